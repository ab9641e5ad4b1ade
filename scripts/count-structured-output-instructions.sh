#!/usr/bin/env bash
# Instruction counts (valgrind callgrind: independent of machine load) per generated token: no
# constraint, --json-schema (draw first, mask when refused) and GEMMA_TINY_MASK_EVERY_TOKEN=1.
# Per token = (count with N tokens - count with 1 token) / (N - 1), same prompt. docs/BENCHMARKS.md.
R=${GEMMA_TINY_STRIPPED:?a stripped release gemma-tiny (strip -o gt .build/release/gemma-tiny): valgrind cannot read its debug info}
M=${1:?usage: scripts/count-structured-output-instructions.sh MODEL.gtm}
S='{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},"city":{"type":"string"},"bio":{"type":"string"}},"required":["name","age","city","bio"],"additionalProperties":false}'
P='Person: Alice, 30, lives in Paris.
JSON: {"name": "Alice", "age": 30, "city": "Paris", "bio": "Alice paints the river and collects old maps."}
Person: Bob, 25, lives in Rome.
JSON:'
count() { # label env... -- args
  local label=$1; shift
  out=$(env "$@" 2>&1 >${TMPDIR:-/tmp}/$label.json | grep -o "Collected : [0-9]*" | grep -o "[0-9]*$")
  n=$(python3 -c 'import json;print(len(json.load(open("${TMPDIR:-/tmp}/'$label'.json"))["generated_ids"]))')
  echo "$label instructions=$out tokens=$n"
}
VG="valgrind --tool=callgrind --callgrind-out-file=/dev/null"
count text1 $VG $R run -m $M -p "$P" --temp 0 -t 1 --json -n 1 --ignore-eos
count text33 $VG $R run -m $M -p "$P" --temp 0 -t 1 --json -n 33 --ignore-eos
count schema1 $VG $R run -m $M -p "$P" --temp 0 -t 1 --json -n 1 --json-schema "$S"
count schema $VG $R run -m $M -p "$P" --temp 0 -t 1 --json -n 96 --json-schema "$S"
count mask1 GEMMA_TINY_MASK_EVERY_TOKEN=1 $VG $R run -m $M -p "$P" --temp 0 -t 1 --json -n 1 --json-schema "$S"
count mask GEMMA_TINY_MASK_EVERY_TOKEN=1 $VG $R run -m $M -p "$P" --temp 0 -t 1 --json -n 96 --json-schema "$S"
