#!/usr/bin/env bash
# End-to-end test of the aarch64 release binaries (scripts/dist.sh) on the real Gemma 3 270M,
# run under qemu-aarch64 with no Swift runtime present: -L a root holding only Debian 12's arm64
# libc6 and libgcc-s1 (glibc 2.36, Raspberry Pi OS bookworm's; .cache/dist/arm64-libc-bookworm,
# made by mmdebstrap on first use), the oldest C library the binaries are built for. Two CPU models:
# -cpu cortex-a72 (NEON only: the neon kernels) and -cpu max (SDOT: neon+dotprod). The x86-64 dist
# binaries, run natively (on a Debian 12 host: glibc 2.36 as well), are the reference:
#   - scripts/glibc-compat.c, the binaries' stand-ins for glibc 2.38's symbols:
#     Tests/glibc-compat/test_glibc_compat.c for both architectures;
#   - gemma-quantize: the GGUF to q8 on aarch64, byte-identical (cmp) to the x86-64 conversion;
#   - gemma-tiny tokenize: the ids of a selection of the tokenizer goldens
#     (fixtures/goldens/gemma3-270m-tokenizer.json: llama.cpp's ids on the same GGUF), also equal
#     to the x86-64 binary's;
#   - gemma-tiny run --temp 0: 2 prompts x 16 tokens, the default file (q4k/q6k, the GGUF's own
#     weights) on both CPU models and q8 on -cpu max, the same ids as x86-64. Different kernels
#     round differently: where the ids part, the two highest logits there (GEMMA_TINY_TRACE_TOP2)
#     tell a near-tie (accepted, reported with its margin) from a bug;
#   - gemma-tiny chat (two turns on stdin), --help, and damaged model files (one `error:` line,
#     non-zero exit);
#   - the server (dist/aarch64/gemma-tiny-serve, when scripts/dist.sh --server built it; required
#     with GEMMA_TINY_AARCH64_SERVER=1) on loopback: /health, a chat completion whole and streamed,
#     both equal to gemma-tiny chat's reply;
#   - the C library (dist/aarch64/lib/libgemmatiny.so): examples/c and Tests/c-abi/test_c_abi.c,
#     cross-compiled with aarch64-linux-gnu-gcc, on the tiny fixture model; the test program again
#     with 16 and 64 KiB pages (qemu -p), and examples/c on the 270M with 16 KiB pages (the Pi 5's
#     kernel in Raspberry Pi OS);
#   - every aarch64 ELF file's LOAD segments aligned to 64 KiB, so that they load on 4, 16 and
#     64 KiB page kernels.
# The kernels themselves are bit-identical to the scalar reference on both CPU models
# (scripts/test-arm.sh); what differs here is the float code around them (norms, softmax, RoPE;
# clang contracts multiply-adds to FMA on aarch64), whose last-bit differences can flip an int8
# activation rounding and so move logits by ~0.1-0.3.
# GEMMA_TINY_AARCH64_FULL=1 adds: the --pure conversion (every matrix requantized: the K scale
# search on aarch64's portable C path, byte-identical to x86-64's AVX2/AVX-512), perplexity on
# two 128-token windows (the batched prompt path; within PPL_TOLERANCE, default 3%, of x86-64's:
# window 1 of docs/FORMAT.md was seen 1.2% apart on the default file), 4 prompts x 32 tokens and
# q8 on both CPU models.
# Usage: scripts/test-aarch64-dist.sh   (needs dist/aarch64 and dist/x86_64 from scripts/dist.sh,
# qemu-user, and GEMMA3_270M_GGUF, the path scripts/fetch-gemma3-270m.sh prints; as root the first
# time, for mmdebstrap). Environment: GEMMA_TINY_AARCH64_TOKENIZE_CASES (default 12),
# GEMMA_TINY_AARCH64_PROMPTS (1-4), GEMMA_TINY_AARCH64_TOKENS, NEAR_TIE (largest accepted top-1 -
# top-2 logit margin at a divergence, default 0.5: the top logits of the x86-64 and aarch64 builds
# were seen up to 0.25 apart on the 270M q8), PPL_TOLERANCE, GEMMA_TINY_AARCH64_FULL,
# GEMMA_TINY_QEMU_TIMEOUT (seconds allowed to each emulated command, default 900).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok    $*"; }
fail() { failed=$((failed + 1)); echo "FAIL  $*"; }
part_start=$SECONDS
part() {  # part NAME: closes the previous part (its time), opens the next
    [ -n "${part_name:-}" ] && echo "time  $part_name: $((SECONDS - part_start)) s"
    part_name=$1 part_start=$SECONDS
    [ -n "$1" ] && echo "== $1"
    return 0
}

gguf=${GEMMA3_270M_GGUF:-}
[ -n "$gguf" ] && [ -f "$gguf" ] || { echo "error: set GEMMA3_270M_GGUF (scripts/fetch-gemma3-270m.sh prints it)" >&2; exit 1; }
for f in dist/aarch64/gemma-tiny dist/aarch64/gemma-quantize dist/x86_64/gemma-tiny dist/x86_64/gemma-quantize; do
    [ -x "$f" ] || { echo "error: $f missing: run scripts/dist.sh aarch64 x86_64 first" >&2; exit 1; }
done
command -v qemu-aarch64 >/dev/null || { echo "error: qemu-aarch64 not found (apt-get install qemu-user)" >&2; exit 1; }
near_tie=${NEAR_TIE:-0.5}
# The CI set takes about 4 minutes; GEMMA_TINY_AARCH64_FULL=1 adds the --pure conversion and the
# perplexity comparison, 4 prompts x 32 tokens and q8 on both CPU models (about 25 minutes: a
# 128-token window with every position's logits takes minutes under qemu's emulation).
full=${GEMMA_TINY_AARCH64_FULL:-0}

# The run-time root: Debian 12's arm64 C library only (no Swift, no libstdc++, no libzstd).
libc=$repo/.cache/dist/arm64-libc-bookworm
if [ ! -f "$libc/.gemma-ready" ]; then
    part "arm64 C library root"
    command -v mmdebstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq mmdebstrap >/dev/null; }
    rm -rf "$libc"
    mmdebstrap --quiet --variant=extract --architectures=arm64 --include=libc6,libgcc-s1 \
        bookworm "$libc" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    for d in lib bin sbin; do [ -e "$libc/$d" ] || ln -s "usr/$d" "$libc/$d"; done
    touch "$libc/.gemma-ready"
fi
if find "$libc" -name 'libswift*' -o -name 'libstdc++*' -o -name 'libzstd*' -o -name 'libFoundation*' | grep -q .; then
    echo "error: $libc holds more than the C library" >&2; exit 1
fi

work=$(mktemp -d /tmp/gemma-aarch64-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Every emulated command has a time limit, so that a hang fails its check (exit 124) instead of
# running into CI's limit (a lost thread wake-up once hung a run here for an hour).
qemu_limit=${GEMMA_TINY_QEMU_TIMEOUT:-900}
a72=(timeout -k 10 "$qemu_limit" qemu-aarch64 -L "$libc" -cpu cortex-a72)
max=(timeout -k 10 "$qemu_limit" qemu-aarch64 -L "$libc" -cpu max)
x86_tiny=(dist/x86_64/gemma-tiny) x86_quant=(dist/x86_64/gemma-quantize)
arm_tiny=dist/aarch64/gemma-tiny arm_quant=dist/aarch64/gemma-quantize
arm_glibc=$("${a72[@]}" "$(find "$libc/" -name libc.so.6 -print -quit)" 2>&1 | grep -oE 'release version [0-9]+\.[0-9]+' | grep -oE '[0-9.]+$' || true)
host_glibc=$(getconf GNU_LIBC_VERSION | grep -oE '[0-9.]+$' || true)  # (not `ldd --version | head`: SIGPIPE under pipefail)

# ---- glibc 2.35+: the stand-ins for glibc 2.38's symbols, and the binaries on older C libraries ----
part "glibc"
# (With the server's stand-ins too: -DGEMMA_COMPAT_GLIBC_2_43.)
compat_flags=(-std=c11 -O2 -fno-builtin -DGEMMA_COMPAT_GLIBC_2_43 Tests/glibc-compat/test_glibc_compat.c scripts/glibc-compat.c -lm)
gcc "${compat_flags[@]}" -o "$work/compat-x86" && aarch64-linux-gnu-gcc "${compat_flags[@]}" -o "$work/compat-arm" ||
    fail "Tests/glibc-compat/test_glibc_compat.c does not build"
compat_check() {  # compat_check LABEL COMMAND...
    local label=$1 out; shift
    out=$("$@" 2>&1 || true)
    if [[ "$(echo "$out" | tail -n 1)" =~ ^glibc-compat:\ [0-9]+\ passed,\ 0\ failed$ ]]; then
        pass "Tests/glibc-compat ($label): $(echo "$out" | tail -n 1 | sed 's/^glibc-compat: //')"
    else
        fail "Tests/glibc-compat ($label): $(echo "$out" | grep -E 'FAIL|error' | head -n 3 | tr '\n' ' ')"
    fi
}
compat_check "x86-64, glibc $host_glibc" "$work/compat-x86"
compat_check "aarch64, glibc ${arm_glibc:-?}" "${a72[@]}" "$work/compat-arm"
# The x86-64 binaries on this host's C library (CI's Debian 12: 2.36), natively.
if dist/x86_64/gemma-tiny --help >"$work/help.txt" 2>&1 && grep -q "USAGE:" "$work/help.txt"; then
    pass "x86-64 gemma-tiny runs on this host's glibc $host_glibc"
else
    fail "x86-64 gemma-tiny on glibc $host_glibc: $(head -n 2 "$work/help.txt" | tr '\n' ' ')"
fi

# ---- the binaries start, with no Swift runtime ----
part "help"
for exe in "$arm_tiny" "$arm_quant"; do
    if "${a72[@]}" "$exe" --help >"$work/help.txt" 2>&1 && grep -q "USAGE:" "$work/help.txt"; then
        pass "$(basename "$exe") --help under qemu-aarch64 on glibc ${arm_glibc:-?} ($(wc -l <"$work/help.txt") lines)"
    else
        fail "$(basename "$exe") --help: $(head -n 3 "$work/help.txt")"
    fi
done
if "${max[@]}" "$arm_tiny" run --help >"$work/help.txt" 2>&1 && grep -q -- "--temp" "$work/help.txt"; then
    pass "gemma-tiny run --help"
else
    fail "gemma-tiny run --help: $(head -n 3 "$work/help.txt")"
fi

# ---- page sizes: Raspberry Pi OS runs the Pi 5 on a kernel with 16 KiB pages ----
# An ELF file loads on a kernel whose page size is at most its LOAD segments' alignment (with
# offset = address modulo that page); Linux on arm64 has 4, 16 and 64 KiB pages. Every aarch64
# binary and the C library must load on all three.
part "page sizes"
for exe in "$arm_tiny" "$arm_quant" dist/aarch64/gemma-tiny-serve dist/aarch64/lib/libgemmatiny.so; do
    [ -f "$exe" ] || continue
    if out=$(python3 - "$exe" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:4] == b"\x7fELF" and data[4] == 2, "not a 64-bit ELF file"
phoff, = struct.unpack_from("<Q", data, 0x20)
phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
loads = [struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize) for i in range(phnum)]
loads = [h for h in loads if h[0] == 1]  # PT_LOAD
bad = [h for h in loads if h[7] < 65536 or h[2] % 65536 != h[3] % 65536]
print(f"{len(loads)} LOAD segments, alignment {min(h[7] for h in loads):#x}" if loads and not bad
      else f"segments aligned below 64 KiB: {[(hex(h[2]), hex(h[3]), hex(h[7])) for h in bad]}")
sys.exit(1 if bad or not loads else 0)
PY
    ); then
        pass "$(basename "$exe") loads on 4, 16 and 64 KiB page kernels ($out)"
    else
        fail "$(basename "$exe"): $out"
    fi
done

# ---- conversion: aarch64 output byte-identical to x86-64's ----
convert_part() {  # convert_part NAME CPU-ARRAY-NAME QUANT-ARGS...
    local name=$1 cpu=$2; shift 2
    part "gemma-quantize $name"
    local t=$SECONDS
    "${x86_quant[@]}" "$gguf" -o "$work/x86-$name.gtm" "$@" >"$work/x86-$name.log" 2>&1 || { fail "x86-64 gemma-quantize $name: $(tail -n 1 "$work/x86-$name.log")"; return; }
    local tx=$((SECONDS - t)); t=$SECONDS
    local -n runner=$cpu
    "${runner[@]}" "$arm_quant" "$gguf" -o "$work/arm-$name.gtm" "$@" >"$work/arm-$name.log" 2>&1 || { fail "aarch64 gemma-quantize $name: $(tail -n 1 "$work/arm-$name.log")"; return; }
    local ta=$((SECONDS - t))
    if cmp -s "$work/x86-$name.gtm" "$work/arm-$name.gtm"; then
        pass "gemma-quantize $name (${runner[*]: -2}): byte-identical to x86-64, $(stat -c %s "$work/arm-$name.gtm") bytes (x86-64 ${tx} s, qemu ${ta} s)"
    else
        fail "gemma-quantize $name: aarch64 output differs from x86-64 ($(cmp "$work/x86-$name.gtm" "$work/arm-$name.gtm" 2>&1 | head -n 1))"
    fi
    # The CI disk can be nearly full by now (its free space varies): every file goes once no
    # later part reads it.
    rm -f "$work/x86-$name.gtm"
}
convert_part q8 max --type q8
# --pure requantizes every matrix: q4k through the K scale search (portable C on aarch64, AVX2 /
# AVX-512 on x86-64, which must write the same bytes), q5 where rows are not whole 256-blocks.
[ "$full" = 1 ] && convert_part q4k-pure a72 --pure
[ -f "$work/arm-q8.gtm" ] || { echo "error: no aarch64 q8 model, stopping"; part ""; echo "aarch64: $passed passed, $((failed + 1)) failed"; exit 1; }
# The default conversion (the GGUF's Q4_K/Q6_K bytes copied, no arithmetic) on x86-64 only: the
# runs below use it, the format being the same on both.
part "gemma-quantize default (x86-64)"
"${x86_quant[@]}" "$gguf" -o "$work/default.gtm" >"$work/default.log" 2>&1 ||
    { fail "x86-64 gemma-quantize (default): $(tail -n 1 "$work/default.log")"; part ""; echo "aarch64: $passed passed, $failed failed"; exit 1; }

# ---- tokenizer goldens ----
part "tokenize"
ncases=${GEMMA_TINY_AARCH64_TOKENIZE_CASES:-12}
# An even spread over the golden cases (every category's first case, then evenly), one text file each.
python3 - "$work/tok" "$ncases" <<'EOF'
import json, os, sys
out, n = sys.argv[1], int(sys.argv[2])
cases = json.load(open("fixtures/goldens/gemma3-270m-tokenizer.json"))["cases"]
chosen, seen = [], set()
for i, c in enumerate(cases):
    if c["category"] not in seen and c["text"]:
        seen.add(c["category"]); chosen.append(i)
step = max(1, len(cases) // max(1, n - len(chosen)))
chosen += [i for i in range(0, len(cases), step) if i not in chosen and cases[i]["text"]]
os.makedirs(out, exist_ok=True)
for i in sorted(chosen[:n]):
    open(f"{out}/{i:05d}.txt", "wb").write(cases[i]["text"].encode("utf-8"))
    open(f"{out}/{i:05d}.ids", "w").write("[" + ", ".join(map(str, cases[i]["ids"])) + "]\n")
EOF
tok_ok=0 tok_bad=0
for txt in "$work"/tok/*.txt; do
    ids=${txt%.txt}.ids
    "${x86_tiny[@]}" tokenize -m "$work/default.gtm" --no-bos -f "$txt" >"$txt.x86" 2>&1 || true
    "${a72[@]}" "$arm_tiny" tokenize -m "$work/default.gtm" --no-bos -f "$txt" >"$txt.arm" 2>&1 || true
    if cmp -s "$txt.arm" "$ids" && cmp -s "$txt.x86" "$ids"; then
        tok_ok=$((tok_ok + 1))
    else
        tok_bad=$((tok_bad + 1))
        echo "      case $(basename "$txt" .txt): golden $(head -c 80 "$ids"), aarch64 $(head -c 80 "$txt.arm"), x86-64 $(head -c 80 "$txt.x86")"
    fi
done
if [ $tok_bad = 0 ] && [ $tok_ok -gt 0 ]; then
    pass "tokenize: $tok_ok golden cases, aarch64 = x86-64 = llama.cpp's ids"
else
    fail "tokenize: $tok_bad of $((tok_ok + tok_bad)) golden cases differ"
fi

# ---- perplexity: the prompt path, every position's logits, against x86-64 ----
# A text of this repository (the same bytes on both sides), two 128-token windows.
ppl_text=$repo/docs/FORMAT.md
ppl_tolerance=${PPL_TOLERANCE:-0.03}
ppl() {  # ppl OUT MODEL RUNNER...: prints the final estimate, or nothing
    local out=$1 model=$2; shift 2
    "$@" perplexity -m "$model" -f "$ppl_text" --ctx 128 --chunks 2 --threads 2 >"$out" 2>"$out.err" || true
    sed -nE 's/^Final estimate: PPL = ([0-9.]+).*/\1/p' "$out"
}
model_file() { [ "$1" = q8 ] && echo "$work/arm-q8.gtm" || echo "$work/default.gtm"; }
# The CPU models a file runs on: the default file on both, q8 on -cpu max (both in the full set).
cpus_for() { if [ "$1" = q8 ] && [ "$full" != 1 ]; then echo max; else echo a72 max; fi; }
for q in default q8; do
    [ "$full" = 1 ] || break
    model=$(model_file $q)
    part "perplexity $q"
    reference=$(ppl "$work/ppl-x86-$q" "$model" "${x86_tiny[@]}")
    [ -n "$reference" ] || { fail "x86-64 perplexity $q: $(tail -n 1 "$work/ppl-x86-$q.err")"; continue; }
    for cpu in $(cpus_for $q); do
        declare -n runner=$cpu
        value=$(ppl "$work/ppl-$cpu-$q" "$model" "${runner[@]}" "$arm_tiny")
        if [ -z "$value" ]; then
            fail "perplexity $q -cpu ${runner[4]}: $(tail -n 1 "$work/ppl-$cpu-$q.err")"
        elif python3 -c 'import sys; a, b, t = map(float, sys.argv[1:]); sys.exit(abs(a / b - 1) > t)' "$value" "$reference" "$ppl_tolerance"; then
            pass "perplexity $q -cpu ${runner[4]}: $value, x86-64 $reference (within $ppl_tolerance)"
        else
            fail "perplexity $q -cpu ${runner[4]}: $value, x86-64 $reference (more than $ppl_tolerance apart)"
        fi
        unset -n runner
    done
done

# ---- greedy generation: the decode path, aarch64 (neon, neon+dotprod) against x86-64 ----
prompts=("The capital of France is" "def fibonacci(n):" \
    "Once upon a time, in a small village by the sea," "The three primary colors are")
prompts=("${prompts[@]:0:${GEMMA_TINY_AARCH64_PROMPTS:-$([ "$full" = 1 ] && echo 4 || echo 2)}}")
ntok=${GEMMA_TINY_AARCH64_TOKENS:-$([ "$full" = 1 ] && echo 32 || echo 16)}
gen() {  # gen OUT MODEL PROMPT RUNNER...: --json to OUT.json, the top-2 trace to OUT.top2
    local out=$1 model=$2 prompt=$3; shift 3
    GEMMA_TINY_TRACE_TOP2=1 "$@" run -m "$model" -p "$prompt" -n $ntok --temp 0 --ignore-eos --threads 2 --ctx 256 --json --verbose \
        >"$out.json" 2>"$out.err" || { echo "      $(tail -n 1 "$out.err")"; return 1; }
    grep '^top2 ' "$out.err" >"$out.top2" || true
}
# compare X86 ARM: prints "same", "tie I MARGIN_X86 MARGIN_ARM" or "diff I ..."
compare() {
    python3 - "$1" "$2" "$near_tie" <<'EOF'
import json, sys
x, a, tie = sys.argv[1], sys.argv[2], float(sys.argv[3])
xi, ai = json.load(open(x + ".json"))["generated_ids"], json.load(open(a + ".json"))["generated_ids"]
def top2(p):
    return [(int(f[1]), float(f[2]), int(f[3]), float(f[4])) for f in (l.split() for l in open(p + ".top2"))]
if xi == ai:
    print("same", len(xi)); sys.exit()
i = next((k for k in range(min(len(xi), len(ai))) if xi[k] != ai[k]), min(len(xi), len(ai)))
tx, ta = top2(x), top2(a)
if i >= len(tx) or i >= len(ta):
    print(f"diff {i} lengths {len(xi)} {len(ai)}"); sys.exit()
(x1, xl1, x2, xl2), (a1, al1, a2, al2) = tx[i], ta[i]
mx, ma = xl1 - xl2, al1 - al2
kind = "tie" if {x1, x2} == {a1, a2} and max(mx, ma) <= tie else "diff"
print(f"{kind} {i} x86-64 top {x1} {xl1:.4f} / {x2} {xl2:.4f} (margin {mx:.4f}), aarch64 top {a1} {al1:.4f} / {a2} {al2:.4f} (margin {ma:.4f})")
EOF
}
same=0 ties=0 diffs=0
for q in default q8; do
    model=$(model_file $q)
    part "run $q: x86-64 reference"
    for i in "${!prompts[@]}"; do
        gen "$work/x86-$q-$i" "$model" "${prompts[$i]}" "${x86_tiny[@]}" || fail "x86-64 run $q prompt $i"
    done
    for cpu in $(cpus_for $q); do
        part "run $q: aarch64 -cpu $( [ $cpu = a72 ] && echo cortex-a72 || echo max )"
        want=$( [ $cpu = a72 ] && echo neon || echo neon+dotprod )
        declare -n runner=$cpu
        for i in "${!prompts[@]}"; do
            out=$work/arm-$q-$cpu-$i
            if ! gen "$out" "$model" "${prompts[$i]}" "${runner[@]}" "$arm_tiny"; then
                fail "aarch64 run $q -cpu $cpu prompt $i"; continue
            fi
            isa=$(grep -o 'kernels: [a-z0-9+]*' "$out.err" | head -n 1 | cut -d' ' -f2)
            rate=$(grep -oE 'generation[^,;]*' "$out.err" | head -n 1)
            result=$(compare "$work/x86-$q-$i" "$out")
            label="run $q -cpu ${runner[4]} ($isa) prompt $i"
            if [ "$isa" != "$want" ]; then
                fail "$label: kernels '$isa', expected $want"
            elif [[ $result == same* ]]; then
                same=$((same + 1)); pass "$label: $ntok ids = x86-64 ($rate)"
            elif [[ $result == tie* ]]; then
                ties=$((ties + 1)); pass "$label: near-tie, parts from x86-64 at token ${result#tie }"
            else
                diffs=$((diffs + 1)); fail "$label: differs from x86-64 at token ${result#diff }"
            fi
        done
        unset -n runner
    done
    if [ $q = q8 ]; then rm -f "$model" "$model.unpacked"; fi
done
echo "      greedy agreement: $same of $((same + ties + diffs)) runs identical to x86-64 for all $ntok tokens, $ties parted at a near-tie (margin <= $near_tie), $diffs differ"

# ---- chat: two turns from stdin ----
part "chat"
printf 'Name a color.\nAnd another one?\n' | "${max[@]}" "$arm_tiny" chat -m "$work/default.gtm" --temp 0 -n 8 --threads 2 --ctx 512 --verbose \
    >"$work/chat.out" 2>"$work/chat.err" && chat_status=0 || chat_status=$?
replies=$(grep -c 'reply [1-9][0-9]* tokens' "$work/chat.err" || true)
if [ "$chat_status" = 0 ] && [ "$replies" = 2 ] && [ "$(grep -c . "$work/chat.out")" -ge 2 ]; then
    pass "chat: two turns answered ($(tr '\n' '|' <"$work/chat.out" | head -c 120))"
else
    fail "chat: exit $chat_status, $replies replies; $(tail -n 2 "$work/chat.err" | tr '\n' ' ')"
fi

# ---- a JSON reply (--json-schema): constrained decoding on aarch64 ----
part "structured output"
schema='{"type":"object","properties":{"color":{"enum":["red","green","blue"]},"count":{"type":"integer"}},"required":["color","count"],"additionalProperties":false}'
"${a72[@]}" "$arm_tiny" run -m "$work/default.gtm" -p "A color and a number, as JSON:" --temp 0 -n 48 --threads 2 \
    --json-schema "$schema" --json >"$work/schema.json" 2>"$work/schema.err" && schema_status=0 || schema_status=$?
# The reply must close by itself and be valid for the schema (Python's jsonschema when installed, else json).
verdict=$(python3 - "$work/schema.json" "$schema" <<'PY' 2>&1
import json, sys
out = json.load(open(sys.argv[1]))
reply, schema = json.loads(out["text"]), json.loads(sys.argv[2])
try:
    import jsonschema
    jsonschema.validate(reply, schema)
except ImportError:
    pass
print(out["stop_reason"], json.dumps(reply, separators=(",", ":")))
PY
) || true
if [ "$schema_status" = 0 ] && [ "${verdict%% *}" = response_complete ]; then
    pass "run --json-schema (cortex-a72): ${verdict#* }"
else
    fail "run --json-schema (cortex-a72): exit $schema_status, $verdict $(tail -n 1 "$work/schema.err")"
fi

# ---- the server (dist/aarch64/gemma-tiny-serve, from scripts/dist.sh --server) on loopback ----
# Required when GEMMA_TINY_AARCH64_SERVER=1 (CI builds it), else tested only if present.
server_part() {  # starts dist/aarch64/gemma-tiny-serve under qemu (-cpu max) and asks it
    local serve=dist/aarch64/gemma-tiny-serve port= serve_pid verdict
    [ -x "$serve" ] || { fail "server: $serve missing (scripts/dist.sh --server aarch64)"; return; }
    # The reference: the same question to `gemma-tiny chat` (one turn, greedy, 8 tokens).
    printf 'Name a color.\n' | "${max[@]}" "$arm_tiny" chat -m "$work/default.gtm" --temp 0 -n 8 --threads 2 --ctx 512 \
        >"$work/chat1.out" 2>"$work/chat1.err" || true
    "${max[@]}" "$serve" -m "$work/default.gtm" --host 127.0.0.1 --port 0 --threads 2 --ctx 512 \
        >"$work/serve.out" 2>"$work/serve.err" &
    serve_pid=$!
    # "serving NAME on http://127.0.0.1:PORT" once it listens (loading takes seconds under qemu).
    for _ in $(seq 180); do
        port=$(sed -n 's|^serving .* on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$work/serve.err")
        [ -n "$port" ] || ! kill -0 "$serve_pid" 2>/dev/null && break
        sleep 1
    done
    # /health, a chat completion, the same streamed (server-sent events): the replies must be the
    # chat command's, whole and streamed.
    [ -n "$port" ] && verdict=$(python3 - "$port" "$work/chat1.out" <<'PY' 2>&1
import json, sys, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
expected = open(sys.argv[2]).read().strip()
http = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
def post(body):
    request = urllib.request.Request(base + "/v1/chat/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    return http.open(request, timeout=600)
health = json.load(http.open(base + "/health", timeout=60))
assert health["status"] == "ok", health
body = {"model": "default", "messages": [{"role": "user", "content": "Name a color."}], "temperature": 0, "max_tokens": 8}
reply = json.load(post(body))
text = reply["choices"][0]["message"]["content"]
assert reply["usage"]["completion_tokens"] == 8, reply["usage"]
assert text.strip() == expected, f"reply {text!r} but gemma-tiny chat said {expected!r}"
body["stream"] = True
streamed, done = "", False
for line in post(body):
    line = line.decode().strip()
    if line == "data: [DONE]":
        done = True
        break
    if line.startswith("data: "):
        streamed += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
assert done and streamed == text, f"streamed {streamed!r} (done: {done}), whole {text!r}"
print("ok", json.dumps(text))
PY
) || true
    if [ -z "$port" ]; then
        fail "server: not listening after 180 s; $(tail -n 2 "$work/serve.err" | tr '\n' ' ')"
    elif [ "${verdict%% *}" = ok ]; then
        pass "server (max): /health, a chat completion and the same streamed = gemma-tiny chat's reply ${verdict#ok }"
    else
        fail "server: $(echo "$verdict" | tail -n 1); $(tail -n 1 "$work/serve.err")"
    fi
    kill "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
}
if [ -x dist/aarch64/gemma-tiny-serve ] || [ "${GEMMA_TINY_AARCH64_SERVER:-0}" = 1 ]; then
    part "server"
    server_part
fi

# ---- damaged model files: one error line, non-zero exit ----
part "damaged files"
damaged() {  # damaged NAME: runs the aarch64 gemma-tiny on $work/bad/NAME.gtm
    local f=$work/bad/$1.gtm status=0
    "${a72[@]}" "$arm_tiny" run -m "$f" -p "Hello" -n 4 --temp 0 >"$work/bad/$1.out" 2>"$work/bad/$1.err" || status=$?
    # One error line, the last; before it at most the unpacking progress notes (a flipped data
    # byte is found while unpacking).
    if [ $status != 0 ] && [ "$(grep -c '^error: ' "$work/bad/$1.err")" = 1 ] && tail -n 1 "$work/bad/$1.err" | grep -q '^error: ' &&
        ! grep -vE '^(error: |unpacking)' "$work/bad/$1.err" | grep -q .; then
        pass "damaged model ($1): exit $status, $(tail -n 1 "$work/bad/$1.err")"
    else
        fail "damaged model ($1): exit $status, stderr: $(tail -n 3 "$work/bad/$1.err" | tr '\n' ' ')"
    fi
    rm -f "$f" "$f.unpacked"
}
mkdir -p "$work/bad"
size=$(stat -c %s "$work/default.gtm")
head -c $((size / 2)) "$work/default.gtm" >"$work/bad/truncated.gtm"
damaged truncated
flip() {  # flip NAME OFFSET: a copy with one byte inverted
    cp "$work/default.gtm" "$work/bad/$1.gtm"
    python3 -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(int(sys.argv[2])); b=f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0]^0xFF]))' "$work/bad/$1.gtm" "$2"
}
flip header-flipped 200; damaged header-flipped
# A byte of a zstd-compressed tensor (a norm: --compress auto stores the quantized matrices as
# they are, mapped and checked by `gemma-quantize verify`, not read through on every start): its
# frame or checksum check fails while it is decompressed.
compressed_byte=$("${x86_quant[@]}" inspect "$work/default.gtm" | python3 -c '
import re, sys
text = sys.stdin.read()
data = int(re.search(r"\bdata (\d+)\.\.<", text).group(1))
rows = [f for f in (l.split() for l in text.splitlines()) if len(f) == 8 and f[6] == "yes"]
print(data + int(rows[-1][3]) + int(rows[-1][4]) // 2)')
flip data-flipped "$compressed_byte"; damaged data-flipped
rm -rf "$work/bad"

# ---- the C library: dist/aarch64/lib/libgemmatiny.so with no Swift runtime ----
# examples/c and Tests/c-abi/test_c_abi.c, cross-compiled (linked against the .so only: the arm64
# C library it needs comes from the run-time root), on the tiny fixture model; the x86-64 dist
# binaries give the expected ids and greedy text.
part "C library"
if [ ! -f dist/aarch64/lib/libgemmatiny.so ]; then
    fail "dist/aarch64/lib/libgemmatiny.so missing"
elif ! command -v aarch64-linux-gnu-gcc >/dev/null; then
    fail "aarch64-linux-gnu-gcc not found (apt-get install gcc-aarch64-linux-gnu)"
else
    mkdir -p "$work/c/tmp"
    "${x86_quant[@]}" fixtures/tiny-gemma -o "$work/c/tiny.gtm" --type q8 --no-compress >/dev/null
    "${x86_tiny[@]}" tokenize -m "$work/c/tiny.gtm" -p "$(printf 'Hello world, h\xc3\xa9llo \xf0\x9f\x98\x80')" |
        tr -d '[],' >"$work/c/ids.txt"
    for n in 24 20; do
        "${x86_tiny[@]}" run -m "$work/c/tiny.gtm" -p Hello -n $n --temp 0 --json |
            python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin)["text"])' >"$work/c/text$n.txt"
    done
    cc_arm=(aarch64-linux-gnu-gcc -std=c99 -Idist/aarch64/include -Ldist/aarch64/lib -Wl,--allow-shlib-undefined)
    "${cc_arm[@]}" examples/c/example.c -lgemmatiny -o "$work/c/example"
    "${cc_arm[@]}" Tests/c-abi/test_c_abi.c -lgemmatiny -lpthread -lm -o "$work/c/test_c_abi"
    lib=(-E "LD_LIBRARY_PATH=$repo/dist/aarch64/lib")
    out=$("${a72[@]}" "${lib[@]}" "$work/c/example" "$work/c/tiny.gtm" Hello 2>&1 || true)
    if [ "$(echo "$out" | sed -n 3p)" = "$(cat "$work/c/text20.txt")" ] &&
       [ "$(echo "$out" | sed -n 4p)" = "[stop reason cancelled, 5 prompt tokens, 20 generated]" ]; then
        pass "examples/c against libgemmatiny.so (cortex-a72): x86-64's greedy text, stopped after 20 pieces"
    else
        fail "examples/c (cortex-a72) printed: $out"
    fi
    # The test program on kernels with 4, 16 (Pi 5) and 64 KiB pages: qemu's -p sets the page
    # size the program sees (sysconf, the granularity of mmap, madvise and mprotect). Only the C
    # library runs this way: under -p, qemu 7.2 leaves the stack out of its /proc/self/maps, where
    # the Swift runtime looks for the arguments of a Swift program's command line.
    for page in 4096 16384 65536; do
        summary=$("${max[@]}" -p $page "${lib[@]}" "$work/c/test_c_abi" "$work/c/tiny.gtm" "$work/c/ids.txt" \
            "$work/c/text24.txt" "$work/c/tmp" 2>&1 | tee "$work/c/test.out" | grep -E "^c-abi: " || true)
        if [ "$summary" != "" ] && [ "$(echo "$summary" | sed -E 's/.* ([0-9]+) failed/\1/')" = 0 ]; then
            pass "Tests/c-abi/test_c_abi.c against libgemmatiny.so (max, $((page / 1024)) KiB pages): ${summary#c-abi: }"
        else
            fail "Tests/c-abi/test_c_abi.c (max, $((page / 1024)) KiB pages): $(grep -E '^not ok|^Bail' "$work/c/test.out" | head -n 5 | tr '\n' ' ')"
        fi
    done
    # The real 270M (the default file, mapped as it is) with 16 KiB pages: the same greedy text.
    prompt="The capital of France is"
    out4=$("${max[@]}" "${lib[@]}" "$work/c/example" "$work/default.gtm" "$prompt" 2>&1 | sed -n 3,4p || true)
    out16=$("${max[@]}" -p 16384 "${lib[@]}" "$work/c/example" "$work/default.gtm" "$prompt" 2>&1 | sed -n 3,4p || true)
    if [ -n "$out4" ] && [ "$out4" = "$out16" ] && [[ "$out16" == *"20 generated]" ]]; then
        pass "examples/c on the 270M default file with 16 KiB pages: the 4 KiB run's text"
    else
        fail "examples/c on the 270M with 16 KiB pages printed: $out16 (4 KiB pages: $out4)"
    fi
fi
part ""

echo "aarch64: $passed passed, $failed failed"
[ "$failed" = 0 ]
