#!/usr/bin/env python3
"""Checks that the source folders depend on each other in one direction only (README, "Layout").

Swift: the GemmaTiny module is one target, so the compiler does not see its folders. A folder
uses another when its code names a type or function declared at the top level of that folder;
each folder may use only the folders listed for it in LAYERS (below it). C: the runtime kernels
(Sources/GemmaKernels) include nothing of the converter's C (converter/QuantizeKernels), and no
runtime Swift target imports it.

Prints every forbidden use (file, name, folder) and exits 1 if there is one.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CORE = os.path.join(ROOT, "Sources", "GemmaTiny")

# Folder -> the folders it may use. Bottom first.
LAYERS = {
    "Support": set(),  # mapped files, atomic output files, memory available, byte counts
    "Configuration": set(),  # ModelConfig, ModelArchitecture, ModelSchema
    "Tokenizer": set(),  # SentencePiece BPE, its vocabulary and settings
    "Format": {"Support", "Configuration", "Tokenizer"},
    "Kernels": {"Support", "Format"},
    "Model": {"Support", "Configuration", "Tokenizer", "Format", "Kernels"},
    "Structured": {"Tokenizer"},
    "Sampling": {"Tokenizer", "Structured"},
    "Generation": {"Support", "Configuration", "Tokenizer", "Format", "Kernels", "Model", "Structured",
                   "Sampling"},
    "Engine": {"Support", "Configuration", "Tokenizer", "Format", "Kernels", "Model", "Structured",
               "Sampling", "Generation"},
}

TOP_LEVEL = re.compile(
    r"^(?:@\w+(?:\([^)\n]*\))?\s+)*(?:public |internal |package |fileprivate |private )?(?:final )?(?:indirect )?"
    r"(?:struct|enum|class|protocol|typealias|actor|func|let|var)\s+(\w+)", re.M)


def swift_files(folder):
    for name in sorted(os.listdir(folder)):
        if name.endswith(".swift"):
            yield os.path.join(folder, name)


def code_only(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', text)


def check_swift():
    folders = sorted(d for d in os.listdir(CORE) if os.path.isdir(os.path.join(CORE, d)) and not d.endswith(".docc"))
    problems = [f"Sources/GemmaTiny/{d}: a folder LAYERS does not list" for d in folders if d not in LAYERS]
    owners, texts = {}, {}
    for d in folders:
        for path in swift_files(os.path.join(CORE, d)):
            text = open(path, encoding="utf-8").read()
            texts[path] = (d, code_only(text))
            for m in TOP_LEVEL.finditer(text):
                owners.setdefault(m.group(1), set()).add(d)
    # A name declared in two folders (an overload, a private helper) says nothing about direction.
    owner = {name: next(iter(ds)) for name, ds in owners.items() if len(ds) == 1}
    for path, (d, code) in texts.items():
        allowed = LAYERS.get(d, set())
        for name, o in owner.items():
            if o != d and o not in allowed and re.search(r"\b" + re.escape(name) + r"\b", code):
                problems.append(f"{os.path.relpath(path, ROOT)}: uses {name} from {o}/ ({d}/ may use: "
                                f"{', '.join(sorted(allowed)) or 'nothing'})")
    return problems


def check_c():
    problems = []
    converter_headers = set(os.listdir(os.path.join(ROOT, "converter", "QuantizeKernels", "include")))
    converter_headers |= {f for f in os.listdir(os.path.join(ROOT, "converter", "QuantizeKernels")) if f.endswith(".h")}
    kernels = os.path.join(ROOT, "Sources", "GemmaKernels")
    for base, _, files in os.walk(kernels):
        for f in files:
            if f.endswith((".c", ".h")):
                path = os.path.join(base, f)
                for inc in re.findall(r'#include\s+"([^"]+)"', open(path, encoding="utf-8").read()):
                    if inc in converter_headers:
                        problems.append(f"{os.path.relpath(path, ROOT)}: includes the converter's {inc}")
    for target in ("GemmaTiny", "GemmaTinyC", "GemmaTinyCLISupport", "gemma-tiny"):
        for base, _, files in os.walk(os.path.join(ROOT, "Sources", target)):
            for f in files:
                if f.endswith(".swift") and re.search(r"^import GemmaQuantizeKernels", open(os.path.join(base, f), encoding="utf-8").read(), re.M):
                    problems.append(f"Sources/{target}/{f}: imports the converter's GemmaQuantizeKernels")
    return problems


def main():
    problems = check_swift() + check_c()
    for p in problems:
        print(p)
    if problems:
        print(f"check-layers: {len(problems)} forbidden uses")
        return 1
    print(f"check-layers: {len(LAYERS)} Swift folders and the C targets depend one way")
    return 0


if __name__ == "__main__":
    sys.exit(main())
