#!/usr/bin/env bash
# Converts the same inputs with two gemma-quantize builds and compares the files byte for byte:
# the check that a refactoring left conversion outputs unchanged.
#
#   scripts/compare-conversions.sh BEFORE/gemma-quantize AFTER/gemma-quantize [MORE.gguf|CHECKPOINT ...]
#
# Inputs: every fixture checkpoint at q4k, q4, q5, q8, bf16, pure q4k and pure q4; the model GGUF
# fixtures at q4k, q4 and q8; then each extra input at the default (q4k) and q4. Prints a line per
# file that differs and "identical: N of M"; exits 1 if any differs or fails to convert.
set -euo pipefail
cd "$(dirname "$0")/.."
before=${1:?usage: scripts/compare-conversions.sh BEFORE_BIN AFTER_BIN [inputs...]}
after=${2:?usage: scripts/compare-conversions.sh BEFORE_BIN AFTER_BIN [inputs...]}
shift 2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
n=0 same=0 status=0

convert() {  # LABEL INPUT [gemma-quantize options]
    local label=$1 input=$2
    shift 2
    n=$((n + 1))
    if ! "$before" convert "$input" -o "$out/before.gtm" --force "$@" >/dev/null 2>&1 \
        || ! "$after" convert "$input" -o "$out/after.gtm" --force "$@" >/dev/null 2>&1; then
        echo "FAILED to convert: $label"; status=1; return
    fi
    if cmp -s "$out/before.gtm" "$out/after.gtm"; then same=$((same + 1)); else echo "DIFFER: $label"; status=1; fi
    rm -f "$out/before.gtm" "$out/after.gtm"
}

for m in fixtures/tiny-gemma*/; do
    m=${m%/}
    for t in q4k q4 q5 q8 bf16; do convert "$(basename "$m") $t" "$m" --type $t; done
    convert "$(basename "$m") pure q4k" "$m" --type q4k --pure
    convert "$(basename "$m") pure q4" "$m" --type q4 --pure --embedding-type q4
done
for g in fixtures/gguf/*.gguf; do
    [ "$(basename "$g")" = quant-zoo.gguf ] && continue  # tensors of every type, not a model
    for t in q4k q4 q8; do convert "$(basename "$g") $t" "$g" --type $t; done
done
for extra in "$@"; do
    convert "$(basename "$extra") q4k" "$extra"
    convert "$(basename "$extra") q4" "$extra" --type q4
done
echo "identical: $same of $n"
exit $status
