import GemmaKernels
import XCTest

/// Number formats and checksums against values defined by their specifications.
final class KernelConversionTests: XCTestCase {
    func testXXH64KnownVectors() {
        // Reference values from the xxHash project (XXH64, seed 0 unless noted).
        XCTAssertEqual(gt_xxh64(nil, 0, 0), 0xEF46_DB37_51D8_E999)
        XCTAssertEqual(Array("a".utf8).withUnsafeBytes { gt_xxh64($0.baseAddress, 1, 0) }, 0xD24E_C4F1_A98C_6E5B)
        XCTAssertEqual(Array("abc".utf8).withUnsafeBytes { gt_xxh64($0.baseAddress, 3, 0) }, 0x44BC_2CF5_AD77_0999)
        let fox = Array("The quick brown fox jumps over the lazy dog".utf8)
        XCTAssertEqual(fox.withUnsafeBytes { gt_xxh64($0.baseAddress, $0.count, 0) }, 0x0B24_2D36_1FDA_71BC)
    }

    func testXXH64StreamingEqualsOneShot() {
        var rng = SplitMix(seed: 7)
        let data = (0..<1000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let oneShot = data.withUnsafeBytes { gt_xxh64($0.baseAddress, $0.count, 99) }
        for split in [0, 1, 7, 31, 32, 33, 64, 500, 999, 1000] {
            var s = gt_xxh64_state()
            gt_xxh64_reset(&s, 99)
            data.withUnsafeBytes { b in
                gt_xxh64_update(&s, b.baseAddress, split)
                // Feed the rest in uneven pieces.
                var i = split
                while i < data.count {
                    let n = min(13, data.count - i)
                    gt_xxh64_update(&s, b.baseAddress! + i, n)
                    i += n
                }
            }
            XCTAssertEqual(gt_xxh64_digest(&s), oneShot, "split at \(split)")
        }
    }

    func testHalfPrecisionRoundTripsEveryValue() {
        for bits in 0...UInt16.max {
            let f = gt_f16_to_f32(bits)
            if f.isNaN { continue }
            XCTAssertEqual(gt_f32_to_f16(f), bits, "f16 \(String(bits, radix: 16))")
        }
    }

    func testHalfPrecisionRounding() {
        XCTAssertEqual(gt_f16_to_f32(gt_f32_to_f16(1.0)), 1.0)
        XCTAssertEqual(gt_f16_to_f32(gt_f32_to_f16(65504)), 65504)
        XCTAssertEqual(gt_f16_to_f32(gt_f32_to_f16(70000)), .infinity)
        XCTAssertEqual(gt_f16_to_f32(gt_f32_to_f16(1e-9)), 0)
        XCTAssertEqual(gt_f16_to_f32(0x0001), Float(5.960464477539063e-08))  // smallest subnormal
        // 1 + 2^-11 is a tie between 1 and 1 + 2^-10: round to even (1).
        XCTAssertEqual(gt_f32_to_f16(1 + 1.0 / 2048), 0x3C00)
        XCTAssertEqual(gt_f32_to_f16(1 + 3.0 / 2048), 0x3C02)
        XCTAssertTrue(gt_f16_to_f32(gt_f32_to_f16(.nan)).isNaN)
    }

    func testBFloat16RoundsToNearestEven() {
        XCTAssertEqual(gt_f32_to_bf16(1.0), 0x3F80)
        // sqrt(2048) = 45.2548… is 45.25 in bf16 (the Gemma embedding normalizer quirk).
        XCTAssertEqual(gt_bf16_to_f32(gt_f32_to_bf16(Float(2048).squareRoot())), 45.25)
        XCTAssertEqual(gt_f32_to_bf16(Float(bitPattern: 0x3F80_8000)), 0x3F80)  // tie, even stays
        XCTAssertEqual(gt_f32_to_bf16(Float(bitPattern: 0x3F81_8000)), 0x3F82)  // tie, odd rounds up
        XCTAssertEqual(gt_f32_to_bf16(Float(bitPattern: 0x3F80_8001)), 0x3F81)
        XCTAssertTrue(gt_bf16_to_f32(gt_f32_to_bf16(.nan)).isNaN)
    }
}

/// A tiny deterministic generator for test data.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Roughly normal values (sum of uniforms), scaled.
    mutating func normal(_ scale: Float = 1) -> Float {
        var s: Float = 0
        for _ in 0..<4 { s += Float(next() >> 40) / Float(1 << 24) }
        return (s - 2) * 1.7 * scale
    }
}
