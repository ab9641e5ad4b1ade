#!/usr/bin/env bash
# The test command: builds everything and runs the whole test suite.
# The 7B-layer-shape parity test needs a ~1.1 GB checkpoint that is generated, not committed:
# set GEMMA_SHAPE_7B2_DIR to a folder to have it generated there (numpy only) and tested.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${GEMMA_SHAPE_7B2_DIR:-}" ] && [ ! -f "$GEMMA_SHAPE_7B2_DIR/config.json" ]; then
    echo "generating the 7B-layer-shape checkpoint in $GEMMA_SHAPE_7B2_DIR"
    python3 fixtures/generate.py shape --preset 7b2 --out "$GEMMA_SHAPE_7B2_DIR"
fi

swift build --build-tests
# All suites are XCTest; --disable-swift-testing skips the empty Swift Testing pass.
swift test --skip-build --disable-swift-testing 2>&1 | tee .build/test-output.txt

# One closing line for the whole run.
summary=$(grep -E "^\s*Executed [0-9]+ tests?, with " .build/test-output.txt | tail -n 1)
executed=$(echo "$summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/')
failed=$(echo "$summary" | sed -E 's/.* ([0-9]+) failures? .*/\1/')
skipped=$(echo "$summary" | grep -oE '[0-9]+ tests? skipped' | grep -oE '^[0-9]+' || echo 0)
echo "tests: $((executed - failed - skipped)) passed, $failed failed, $skipped skipped"
