import GemmaKernels
import GemmaTiny
import XCTest

/// Quantize/dequantize and the scalar dot products.
final class QuantizationTests: XCTestCase {
    func randomRow(_ n: Int, seed: UInt64, outliers: Bool = false) -> [Float] {
        var rng = SplitMix(seed: seed)
        return (0..<n).map { i in rng.normal(0.02) * (outliers && i % 97 == 0 ? 20 : 1) }
    }

    func roundTrip(_ type: StorageType, _ x: [Float]) -> [Float] {
        var packed = [UInt8](repeating: 0, count: type.rowBytes(x.count)!)
        gt_quantize_row(Int32(type.rawValue), x, x.count, &packed)
        var y = [Float](repeating: .nan, count: x.count)
        gt_dequantize_row(Int32(type.rawValue), packed, x.count, &y)
        return y
    }

    func relativeRMS(_ x: [Float], _ y: [Float]) -> Double {
        var e = 0.0, r = 0.0
        gt_error_sums(x, y, x.count, &e, &r)
        return (e / r).squareRoot()
    }

    func testPlainTypesAreExact() {
        let x = randomRow(256, seed: 1)
        XCTAssertEqual(roundTrip(.f32, x), x)
        let bf = x.map { gt_bf16_to_f32(gt_f32_to_bf16($0)) }
        XCTAssertEqual(roundTrip(.bf16, bf), bf, "bf16-representable values survive unchanged")
    }

    func testQ8ErrorIsWithinHalfAStep() {
        let x = randomRow(4096, seed: 2, outliers: true)
        let y = roundTrip(.q8, x)
        for b in 0..<(x.count / 32) {
            let block = x[b * 32 ..< b * 32 + 32]
            let amax = block.map(abs).max()!
            // Step is amax/127 (rounded to f16); allow the f16 scale rounding on top of half a step.
            let bound = amax / 127 * 0.5 * 1.01 + 1e-9
            for i in block.indices { XCTAssertLessThanOrEqual(abs(x[i] - y[i]), bound) }
        }
        // Outlier blocks have coarse steps; typical data is well under 1%.
        XCTAssertLessThan(relativeRMS(x, y), 0.015)
        let plain = randomRow(4096, seed: 5)
        XCTAssertLessThan(relativeRMS(plain, roundTrip(.q8, plain)), 0.01)
    }

    func testQ4ErrorBoundAndSearchBeatsAbsmax() {
        let x = randomRow(32 * 512, seed: 3)
        let y = roundTrip(.q4, x)
        let rel = relativeRMS(x, y)
        XCTAssertLessThan(rel, 0.12, "q4 relative RMS error \(rel)")
        // The plain absmax choice (largest magnitude -> -8) is a lower bar the search must clear.
        var absmax = [Float](repeating: 0, count: x.count)
        for b in 0..<(x.count / 32) {
            let block = Array(x[b * 32 ..< b * 32 + 32])
            let m = block.max { abs($0) < abs($1) }!
            let d = gt_f16_to_f32(gt_f32_to_f16(m / -8))
            for i in 0..<32 { absmax[b * 32 + i] = d * Float(min(7, max(-8, (block[i] / d).rounded()))) }
        }
        XCTAssertLessThan(rel, relativeRMS(x, absmax))
    }

    func testQ5ErrorBoundAndSearchBeatsAbsmax() {
        let x = randomRow(32 * 512, seed: 4)
        let y = roundTrip(.q5, x)
        let rel = relativeRMS(x, y)
        XCTAssertLessThan(rel, 0.06, "q5 relative RMS error \(rel)")
        XCTAssertLessThan(rel, relativeRMS(x, roundTrip(.q4, x)) * 0.6, "one more bit roughly halves the error")
        var absmax = [Float](repeating: 0, count: x.count)
        for b in 0..<(x.count / 32) {
            let block = Array(x[b * 32 ..< b * 32 + 32])
            let m = block.max { abs($0) < abs($1) }!
            let d = gt_f16_to_f32(gt_f32_to_f16(m / -16))
            for i in 0..<32 { absmax[b * 32 + i] = d * Float(min(15, max(-16, (block[i] / d).rounded()))) }
        }
        XCTAssertLessThan(rel, relativeRMS(x, absmax))
    }

    /// Values already on a 5-bit grid (a GGUF Q5_0 tensor: d * (q - 16), the largest magnitude
    /// at -16 d) come back exactly: the scale search's first candidate is that scale.
    func testQ5RecoversA5BitGridExactly() {
        var rng = SplitMix(seed: 9)
        var x: [Float] = []
        for _ in 0..<256 {
            let d = gt_f16_to_f32(gt_f32_to_f16(0.0005 + abs(rng.normal(0.002))))
            var q = (0..<32).map { _ in Int(rng.next() % 32) - 16 }
            q[Int(rng.next() % 32)] = -16
            x += q.map { d * Float($0) }
        }
        XCTAssertEqual(roundTrip(.q5, x), x)
        XCTAssertGreaterThan(relativeRMS(x, roundTrip(.q4, x)), 0.02, "q4 cannot hold a 5-bit grid")
    }

    func testQ5BitLayout() {
        // Element j: low nibble of byte 6 + (j % 16) (low for j < 16, high otherwise), bit 4 in
        // bit j of the little-endian u32 at bytes 2...5; stored value q + 16.
        var x = [Float](repeating: 0, count: 32)
        x[0] = -16; x[16] = 15; x[1] = 1; x[31] = -1
        var packed = [UInt8](repeating: 0, count: 22)
        gt_quantize_row(Int32(GT_Q5), x, 32, &packed)
        XCTAssertEqual(gt_f16_to_f32(UInt16(packed[0]) | UInt16(packed[1]) << 8), 1)
        let qh = packed[2..<6].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
        // Stored: x[0] -> 0, x[1] -> 17, x[16] -> 31, x[31] -> 15, every other element -> 16.
        var expectedHigh: UInt32 = 0
        for j in 0..<32 where ![0, 31].contains(j) { expectedHigh |= 1 << UInt32(j) }
        XCTAssertEqual(qh, expectedHigh)
        XCTAssertEqual(packed[6], 0x0 | 0xF << 4)
        XCTAssertEqual(packed[7], 0x1 | 0x0 << 4)
        XCTAssertEqual(packed[6 + 15], 0x0 | 0xF << 4)
        XCTAssertEqual(roundTrip(.q5, x), x)
    }

    func testZeroBlocksAndNibbleLayout() {
        XCTAssertEqual(roundTrip(.q4, [Float](repeating: 0, count: 64)), [Float](repeating: 0, count: 64))
        XCTAssertEqual(roundTrip(.q8, [Float](repeating: 0, count: 64)), [Float](repeating: 0, count: 64))
        XCTAssertEqual(roundTrip(.q5, [Float](repeating: 0, count: 64)), [Float](repeating: 0, count: 64))
        // Element j sits in the low nibble of byte j, element j+16 in its high nibble.
        var x = [Float](repeating: 0, count: 32)
        x[0] = -8; x[16] = 7; x[1] = 1
        var packed = [UInt8](repeating: 0, count: 18)
        gt_quantize_row(Int32(GT_Q4), x, 32, &packed)
        XCTAssertEqual(gt_f16_to_f32(UInt16(packed[0]) | UInt16(packed[1]) << 8), 1)
        XCTAssertEqual(packed[2], 0x0 | 0xF << 4)
        XCTAssertEqual(packed[3], 0x9 | 0x8 << 4)
    }

    func testScalarDotMatchesDequantizedDot() {
        for type in StorageType.allCases {
            for n in [32, 64, 96, 2048] {
                let w = randomRow(n, seed: UInt64(n) + 10, outliers: true)
                let x = randomRow(n, seed: UInt64(n) + 20).map { $0 * 50 }
                var packed = [UInt8](repeating: 0, count: type.rowBytes(n)!)
                gt_quantize_row(Int32(type.rawValue), w, n, &packed)
                let wq = roundTrip(type, w)
                let expected = zip(wq, x).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                let dot = gt_dot_scalar(Int32(type.rawValue), packed, x, n)
                XCTAssertEqual(Double(dot), expected, accuracy: 1e-4 * max(1, abs(expected)), "\(type) n=\(n)")
            }
        }
    }

    func testRowBytes() {
        XCTAssertEqual(StorageType.q4.rowBytes(2048), 2048 / 32 * 18)
        XCTAssertEqual(StorageType.q8.rowBytes(64), 68)
        XCTAssertNil(StorageType.q4.rowBytes(33))
        XCTAssertEqual(StorageType.bf16.rowBytes(33), 66)
        XCTAssertEqual(StorageType.q4.bitsPerWeight, 4.5)
        XCTAssertEqual(StorageType.q5.rowBytes(2048), 2048 / 32 * 22)
        XCTAssertNil(StorageType.q5.rowBytes(48))
        XCTAssertEqual(StorageType.q5.bitsPerWeight, 5.5)
        XCTAssertEqual(StorageType.q8.bitsPerWeight, 8.5)
    }
}
