import GemmaKernels
import GemmaQuantizeKernels
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
            for n in [32, 64, 96, 2048] where n % type.blockSize == 0 {  // K types: 2048 only
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

/// The K-quant storage types GT_Q4K / GT_Q6K (ggml's Q4_K / Q6_K super-blocks of 256), through
/// the C target with raw type ids (the Swift StorageType cases are the converter's business).
extension QuantizationTests {
    static let q4k = Int32(GT_Q4K), q6k = Int32(GT_Q6K)

    func kRoundTrip(_ type: Int32, _ x: [Float]) -> [Float] {
        var packed = [UInt8](repeating: 0, count: gt_row_bytes(type, x.count))
        gt_quantize_row(type, x, x.count, &packed)
        var y = [Float](repeating: .nan, count: x.count)
        gt_dequantize_row(type, packed, x.count, &y)
        return y
    }

    func testKQuantRowBytes() {
        XCTAssertEqual(gt_row_bytes(Self.q4k, 2048), 8 * 144)
        XCTAssertEqual(gt_row_bytes(Self.q6k, 16384), 64 * 210)
        XCTAssertEqual(gt_row_bytes(Self.q4k, 2048 + 32), 0, "rows are whole super-blocks")
        XCTAssertEqual(gt_row_bytes(Self.q6k, 128), 0)
        XCTAssertEqual(Int(GT_KBLOCK), 256)
        XCTAssertEqual(Int(GT_TYPE_COUNT), 7)
        XCTAssertEqual(gt_activation_bytes(Self.q4k, 2048), gt_activation_bytes(Int32(GT_Q8), 2048))
        XCTAssertEqual(gt_activation_bytes(Self.q6k, 2048 + 32), 0)
    }

    /// Relative RMS error on Gaussian-like rows, against stated bounds and against naive rounding
    /// with exact (f32) per-sub-block min/max (q4k) or absmax (q6k) scales and no search; on rows
    /// with heavy outliers, against q4 at the same bits per weight.
    func testKQuantErrorBoundsAndSearchBeatsNaive() {
        let x = randomRow(256 * 64, seed: 31)
        let e4 = relativeRMS(x, kRoundTrip(Self.q4k, x))
        let e6 = relativeRMS(x, kRoundTrip(Self.q6k, x))
        XCTAssertLessThan(e4, 0.085, "q4k relative RMS error \(e4)")  // measured ~0.074 on such rows
        XCTAssertLessThan(e6, 0.022, "q6k relative RMS error \(e6)")  // ~0.019
        var naive4 = [Float](repeating: 0, count: x.count), naive6 = naive4
        for b in stride(from: 0, to: x.count, by: 32) {
            let s = x[b ..< b + 32], lo = min(0, s.min()!), step = (s.max()! - lo) / 15
            for i in s.indices { naive4[i] = step > 0 ? step * min(15, max(0, ((x[i] - lo) / step).rounded())) + lo : lo }
        }
        for b in stride(from: 0, to: x.count, by: 16) {
            let s = x[b ..< b + 16], m = s.max { abs($0) < abs($1) }!, d = m / -32
            for i in s.indices { naive6[i] = d != 0 ? d * min(31, max(-32, (x[i] / d).rounded())) : 0 }
        }
        XCTAssertLessThan(e4, relativeRMS(x, naive4))
        XCTAssertLessThan(e6, relativeRMS(x, naive6))
        XCTAssertLessThan(e6, e4 * 0.4, "two more bits")
        let heavy = randomRow(256 * 64, seed: 32, outliers: true)
        let h4 = relativeRMS(heavy, kRoundTrip(Self.q4k, heavy)), h6 = relativeRMS(heavy, kRoundTrip(Self.q6k, heavy))
        XCTAssertLessThan(h4, relativeRMS(heavy, roundTrip(.q4, heavy)), "q4k beats q4 at the same 4.5 bits per weight")
        XCTAssertLessThan(h6, h4 * 0.4)
    }

    /// A hand-built Q4_K and Q6_K block dequantizes as the documented layout says.
    func testKQuantDequantizeHandBuiltBlocks() {
        // Q4_K: d = 0.5, dmin = 0.25, sub-block j scale 1 + j, min 2 * j + (j >= 4 ? 40 : 0)
        // (the last four need the high bits), value v of sub-block j: q = (v + j) % 16.
        var b4 = [UInt8](repeating: 0, count: 144)
        let d = gt_f32_to_f16(0.5), dmin = gt_f32_to_f16(0.25)
        b4[0] = UInt8(d & 0xFF); b4[1] = UInt8(d >> 8); b4[2] = UInt8(dmin & 0xFF); b4[3] = UInt8(dmin >> 8)
        let sc = (0..<8).map { 1 + $0 + ($0 >= 4 ? 32 : 0) }, mn = (0..<8).map { 2 * $0 + ($0 >= 4 ? 40 : 0) }
        for j in 0..<8 {
            if j < 4 {
                b4[4 + j] = UInt8(sc[j]); b4[8 + j] = UInt8(mn[j])
            } else {
                b4[8 + j] = UInt8((sc[j] & 15) | (mn[j] & 15) << 4)
                b4[4 + j - 4] |= UInt8((sc[j] >> 4) << 6)
                b4[4 + j] |= UInt8((mn[j] >> 4) << 6)
            }
        }
        for g in 0..<4 {
            for l in 0..<32 {
                let lo = (l + 2 * g) % 16, hi = (l + 2 * g + 1) % 16
                b4[16 + 32 * g + l] = UInt8(lo | hi << 4)
            }
        }
        var y = [Float](repeating: .nan, count: 256)
        gt_dequantize_row(Self.q4k, b4, 256, &y)
        for v in 0..<256 {
            let j = v / 32, q = (v % 32 + j) % 16
            XCTAssertEqual(y[v], 0.5 * Float(sc[j]) * Float(q) - 0.25 * Float(mn[j]), "q4k value \(v)")
        }
        // Q6_K: d = 0.125 at bytes 208..209, scales[k] = k - 8, value v: q = (3 v) % 64.
        var b6 = [UInt8](repeating: 0, count: 210)
        let d6 = gt_f32_to_f16(0.125)
        b6[208] = UInt8(d6 & 0xFF); b6[209] = UInt8(d6 >> 8)
        for k in 0..<16 { b6[192 + k] = UInt8(bitPattern: Int8(k - 8)) }
        for v in 0..<256 {
            let q = (3 * v) % 64, h = v / 128, quarter = (v % 128) / 32, l = v % 32
            let lowByte = 64 * h + 32 * (quarter & 1) + l
            b6[lowByte] |= UInt8(quarter < 2 ? q & 15 : (q & 15) << 4)
            b6[128 + 32 * h + l] |= UInt8((q >> 4) << (2 * quarter))
        }
        gt_dequantize_row(Self.q6k, b6, 256, &y)
        for v in 0..<256 {
            XCTAssertEqual(y[v], 0.125 * Float(v / 16 - 8) * Float((3 * v) % 64 - 32), "q6k value \(v)")
        }
    }

    /// fixtures/goldens/kquant-*: the committed inputs still quantize to the committed bytes
    /// (identical to ggml's reference quantizers), which dequantize to exactly gguf-py's floats.
    func testKQuantGoldens() throws {
        let dir = ModelFixtures.fixtures.appendingPathComponent("goldens")
        func floats(_ name: String) throws -> [Float] {
            let data = try Data(contentsOf: dir.appendingPathComponent(name))
            return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        let x = try floats("kquant-input.f32")
        XCTAssertEqual(x.count, 6 * 512)
        for (type, name) in [(Self.q4k, "q4k"), (Self.q6k, "q6k")] {
            let want = [UInt8](try Data(contentsOf: dir.appendingPathComponent("kquant-\(name).bin")))
            var got = [UInt8](repeating: 0, count: 6 * gt_row_bytes(type, 512))
            for r in 0..<6 {
                got.withUnsafeMutableBytes { out in
                    x.withUnsafeBufferPointer { gt_quantize_row(type, $0.baseAddress! + 512 * r, 512, out.baseAddress! + r * gt_row_bytes(type, 512)) }
                }
            }
            XCTAssertEqual(got, want, "\(name): quantized golden bytes")
            let ref = try floats("kquant-\(name).f32")
            var y = [Float](repeating: .nan, count: x.count)
            gt_dequantize_row(type, want, x.count, &y)
            XCTAssertEqual(y.map(\.bitPattern), ref.map(\.bitPattern), "\(name): gguf-py's dequantization")
        }
    }

    func testKQuantScalarDotAndMatvec() {
        let n = 1024
        let w = randomRow(3 * n, seed: 41, outliers: true), x = randomRow(n, seed: 42).map { $0 * 30 }
        for type in [Self.q4k, Self.q6k] {
            let rb = gt_row_bytes(type, n)
            var packed = [UInt8](repeating: 0, count: 3 * rb)
            for r in 0..<3 {
                packed.withUnsafeMutableBytes { out in
                    w.withUnsafeBufferPointer { gt_quantize_row(type, $0.baseAddress! + r * n, n, out.baseAddress! + r * rb) }
                }
            }
            var y = [Float](repeating: .nan, count: 3)
            gt_matvec_scalar(type, packed, rb, n, x, &y, 0, 3)
            for r in 0..<3 {
                let wq = kRoundTrip(type, Array(w[r * n ..< (r + 1) * n]))
                let expected = zip(wq, x).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                XCTAssertEqual(Double(y[r]), expected, accuracy: 1e-4 * max(1, abs(expected)))
            }
        }
    }
}
