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
swift test --skip-build 2>&1 | tee .build/test-output.txt
