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

    func testZeroBlocksAndNibbleLayout() {
        XCTAssertEqual(roundTrip(.q4, [Float](repeating: 0, count: 64)), [Float](repeating: 0, count: 64))
        XCTAssertEqual(roundTrip(.q8, [Float](repeating: 0, count: 64)), [Float](repeating: 0, count: 64))
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
        XCTAssertEqual(StorageType.q8.bitsPerWeight, 8.5)
    }
}
