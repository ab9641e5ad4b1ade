#!/usr/bin/env bash
# The test command: builds both packages (the core and server/) and runs the whole test suite.
# The 7B-layer-shape parity test needs a ~1.1 GB checkpoint that is generated, not committed:
# set GEMMA_SHAPE_7B2_DIR to a folder to have it generated there (numpy only) and tested.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${GEMMA_SHAPE_7B2_DIR:-}" ] && [ ! -f "$GEMMA_SHAPE_7B2_DIR/config.json" ]; then
    echo "generating the 7B-layer-shape checkpoint in $GEMMA_SHAPE_7B2_DIR"
    python3 fixtures/generate.py shape --preset 7b2 --out "$GEMMA_SHAPE_7B2_DIR"
fi

# The folders depend on each other in one direction (README, "Layout"): checked before building.
python3 scripts/check-layers.py

# Two packages: the core (.) and the HTTP server (server/, which depends on the core by path).
swift build --build-tests
# The C kernels on every ISA path (native x86-64, and AArch64 under qemu-aarch64) beside the Swift
# tests: its qemu runs take one core, the test process mostly the other. Its output follows theirs.
scripts/test-arm.sh >.build/test-arm-output.txt 2>&1 &
arm_pid=$!
# All suites are XCTest; --disable-swift-testing skips the empty Swift Testing pass.
status=0
swift test --skip-build --disable-swift-testing 2>&1 | tee .build/test-output.txt || status=1

# The C library (libgemmatiny, gemma_tiny.h): examples/c, examples/python, Tests/c-abi under ASan.
echo "C library (scripts/test-c-abi.sh)"
scripts/test-c-abi.sh 2>&1 | tee .build/c-abi-output.txt || status=1

echo "server package (server/)"
swift build --package-path server --build-tests
# The server tests run the core's gemma-tiny too (`gemma-tiny serve` handing over to gemma-tiny-serve).
GEMMA_TINY_BIN="$(swift build --show-bin-path)/gemma-tiny" \
    swift test --package-path server --skip-build --disable-swift-testing 2>&1 | tee .build/server-test-output.txt || status=1

echo "C kernels on every ISA path (scripts/test-arm.sh)"
wait $arm_pid || status=1
cat .build/test-arm-output.txt

# One closing line for both runs: the last "Executed N tests, with F failures" line of each.
passed=0 failed=0 skipped=0
for output in .build/test-output.txt .build/server-test-output.txt; do
    summary=$(grep -E "^\s*Executed [0-9]+ tests?, with " "$output" | tail -n 1 || true)
    if [ -z "$summary" ]; then
        echo "no test summary in $output"; failed=$((failed + 1)); status=1; continue
    fi
    run_executed=$(echo "$summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/')
    run_failed=$(echo "$summary" | sed -E 's/.* ([0-9]+) failures? .*/\1/')
    run_skipped=$(echo "$summary" | grep -oE '[0-9]+ tests? skipped' | grep -oE '^[0-9]+' || echo 0)
    passed=$((passed + run_executed - run_failed - run_skipped))
    failed=$((failed + run_failed))
    skipped=$((skipped + run_skipped))
done
# The C library's checks (scripts/test-c-abi.sh's last line) count with them.
c_abi=$(grep -E "^c-abi: [0-9]+ passed, [0-9]+ failed" .build/c-abi-output.txt | tail -n 1 || true)
if [ -z "$c_abi" ]; then
    echo "no summary in .build/c-abi-output.txt"; failed=$((failed + 1)); status=1
else
    passed=$((passed + $(echo "$c_abi" | sed -E 's/c-abi: ([0-9]+) passed.*/\1/')))
    failed=$((failed + $(echo "$c_abi" | sed -E 's/.* ([0-9]+) failed/\1/')))
fi
line="tests: $passed passed, $failed failed, $skipped skipped (C library checks included: ${c_abi#c-abi: })"
echo "$line"

# Sanitizers (separate build folders; GEMMA_TINY_SKIP_SANITIZERS=1 skips this slower part):
# the kernel, tokenizer, file-format and reader tests under AddressSanitizer, the concurrency
# tests under ThreadSanitizer. Leak detection is off: the Swift runtime's one-time allocations
# are not leaks of ours.
if [ "${GEMMA_TINY_SKIP_SANITIZERS:-}" != 1 ]; then
    echo "AddressSanitizer: kernel, tokenizer, format and reader tests"
    swift build --build-tests --scratch-path .build-asan --sanitize=address
    ASAN_OPTIONS=detect_leaks=0 swift test --skip-build --scratch-path .build-asan --sanitize=address --disable-swift-testing \
        --filter 'Kernel|Tokenizer|CorruptFile|Format|GGUF' 2>&1 | tee .build/asan-output.txt | grep -E "Executed|AddressSanitizer|error" | tail -n 5 || status=1
    if grep -q "ERROR: AddressSanitizer" .build/asan-output.txt; then echo "AddressSanitizer reported a problem"; status=1; fi

    echo "ThreadSanitizer: engine, session and worker-pool tests, and a batch's rows on 3 threads"
    swift build --build-tests --scratch-path .build-tsan --sanitize=thread
    swift test --skip-build --scratch-path .build-tsan --sanitize=thread --disable-swift-testing \
        --filter 'Engine|testModelWorkerPool|testPrefillBatchedMatchesTokenByToken' 2>&1 | tee .build/tsan-output.txt | grep -E "Executed|ThreadSanitizer|error" | tail -n 5 || status=1
    if grep -q "ThreadSanitizer" .build/tsan-output.txt; then echo "ThreadSanitizer reported a problem"; status=1; fi
fi
[ $status -eq 0 ] || echo "FAILED (see above)"
echo "$line"
exit $status
