#!/usr/bin/env bash
# The speed cost of structured output (docs/BENCHMARKS.md#structured-output): generation tokens/s
# of `gemma-tiny run` on few-shot prompts, three ways, alternated prompt by prompt so that load
# on a shared machine hits all three alike:
#   text    no constraint (-n 32, --ignore-eos)
#   schema  --json-schema: the grammar is asked about the drawn token; the whole mask is computed
#           only when that token is refused (the default)
#   mask    the same with GEMMA_TINY_MASK_EVERY_TOKEN=1: the whole mask at every token (worst case)
# Prints the median tokens/s of each and the ratios to text.
#
#   scripts/bench-structured-output.sh MODEL.gtm [ROUNDS] [THREADS]
set -euo pipefail
model=$1 rounds=${2:-3} threads=${3:-2}
bin=${GEMMA_TINY_BIN:-$(cd "$(dirname "$0")/.." && swift build -c release --show-bin-path)/gemma-tiny}
schema='{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},"city":{"type":"string"},"bio":{"type":"string"}},"required":["name","age","city","bio"],"additionalProperties":false}'
people=("Bob, 25, lives in Rome" "Chen, 41, lives in Beijing" "Dana, 19, lives in Oslo" "Emil, 52, lives in Berlin"
        "Fatima, 33, lives in Cairo" "Goro, 67, lives in Osaka" "Hana, 28, lives in Seoul" "Ivan, 45, lives in Kyiv")
tps() { python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["timing"]["gen_tokens_per_s"], len(r["generated_ids"]))'; }
declare -A results
for ((r = 0; r < rounds; r++)); do
    for who in "${people[@]}"; do
        prompt="Person: Alice, 30, lives in Paris.
JSON: {\"name\": \"Alice\", \"age\": 30, \"city\": \"Paris\", \"bio\": \"Alice paints the river and collects old maps.\"}
Person: $who.
JSON:"
        common=(run -m "$model" -p "$prompt" --temp 0 -t "$threads" --json)
        results[text]+="$("$bin" "${common[@]}" -n 32 --ignore-eos | tps);"
        results[schema]+="$("$bin" "${common[@]}" -n 96 --json-schema "$schema" | tps);"
        results[mask]+="$(GEMMA_TINY_MASK_EVERY_TOKEN=1 "$bin" "${common[@]}" -n 96 --json-schema "$schema" | tps);"
    done
done
python3 - "${results[text]}" "${results[schema]}" "${results[mask]}" <<'PY'
import statistics, sys
names = ["text", "schema", "mask"]
runs = {n: [tuple(map(float, x.split())) for x in arg.split(";") if x] for n, arg in zip(names, sys.argv[1:])}
med = {n: statistics.median(t for t, _ in v) for n, v in runs.items()}
for n in names:
    v = sorted(t for t, _ in runs[n])
    print(f"{n:7s} median {med[n]:6.1f} tok/s  (min {v[0]:.1f}, max {v[-1]:.1f}, {len(v)} runs, "
          f"{statistics.mean(k for _, k in runs[n]):.0f} tokens each)  ratio to text {med[n] / med['text']:.3f}")
PY
