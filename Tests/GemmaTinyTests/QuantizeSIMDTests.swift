import Foundation
import GemmaKernels
import GemmaQuantizeKernels
import XCTest

/// The converter's row quantizers: every SIMD path against the portable reference
/// (`gt_quantize_row_reference`), bit for bit, and the reference against golden hashes of the
/// bytes the quantizer wrote before the SIMD rewrite (so a change of scales cannot slip in).
///
/// The data probes the q4 search's corners: all-zero blocks, all-equal values, +-ties for the
/// largest magnitude (the first one sets the candidate scales), values exactly on the q4 grid,
/// outliers, -0.0, huge magnitudes (the squared errors overflow to infinity) and tiny ones
/// (subnormal scales, f16 scale underflow), and random rows whose block counts leave 1..7 blocks
/// after the AVX2 path's groups of eight. NaN is outside the contract (the converter rejects it
/// first); infinities are too, so none is generated.
final class QuantizeSIMDTests: XCTestCase {
    /// Every SIMD path this CPU supports (none: the test is skipped).
    var simdPaths: [Int32] {
        [GT_ISA_AVX2, GT_ISA_AVX2_VNNI].map { Int32($0) }.filter { gt_isa_supported($0) != 0 }
    }

    /// A block of 32 of one of the edge kinds (0...11) or plain random values (12...).
    static func block(kind: Int, rng: inout SplitMix) -> [Float] {
        let scale = Float(pow(10.0, Double(rng.next() % 2400) / 100 - 14))  // 1e-14 ... 1e10
        return (0..<32).map { i -> Float in
            let v = rng.normal(scale)
            switch kind {
            case 0: return 0
            case 1: return scale
            case 2: return -scale
            case 3: return rng.next() & 1 == 0 ? scale : -scale
            case 4: return Float(Int(rng.next() % 16) - 8) * scale
            case 5: return i == 13 ? 40 * scale : v
            case 6: return i == 31 ? -scale : Float(rng.next() % 3) * scale * 0.01
            case 7: return i % 2 == 0 ? -0.0 : 0
            case 8: return rng.normal(1e37)                                   // overflowing squares
            case 9: return Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()) & 0x807F_FFFF)  // subnormal
            case 10: return rng.normal(1e-30)
            case 11: return i < 16 ? scale : -scale
            default: return v
            }
        }
    }

    static func rows(blocks: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix(seed: seed)
        var x: [Float] = []
        x.reserveCapacity(blocks * 32)
        for _ in 0..<blocks { x += block(kind: Int(rng.next() % 24), rng: &rng) }
        return x
    }

    func quantize(_ x: [Float], type: Int32, isa: Int32?) -> [UInt8] {
        var out = [UInt8](repeating: 0xAA, count: gt_row_bytes(type, x.count))
        if let isa { gt_quantize_row_isa(isa, type, x, x.count, &out) } else { gt_quantize_row_reference(type, x, x.count, &out) }
        return out
    }

    func testSIMDPathsMatchTheReferenceBitForBit() throws {
        let paths = simdPaths
        guard !paths.isEmpty else { throw XCTSkip("no SIMD quantizer on this CPU") }
        for (index, blocks) in [1, 2, 7, 8, 9, 15, 16, 17, 64, 517].enumerated() {
            let x = Self.rows(blocks: blocks, seed: 100 + UInt64(index))
            for type in [Int32(GT_Q8), Int32(GT_Q4)] {
                let reference = quantize(x, type: type, isa: nil)
                for isa in paths {
                    let out = quantize(x, type: type, isa: isa)
                    let first = out.indices.first { out[$0] != reference[$0] }
                    XCTAssertNil(first, "\(String(cString: gt_isa_name(isa))) type \(type), \(blocks) blocks: first differing byte \(first ?? -1)")
                }
            }
        }
    }

    func testEveryEdgeKindAlone() throws {
        let paths = simdPaths
        guard !paths.isEmpty else { throw XCTSkip("no SIMD quantizer on this CPU") }
        var rng = SplitMix(seed: 9)
        for kind in 0..<13 {
            for _ in 0..<40 {
                // Nine blocks of one kind: a full group of eight and a one-block tail.
                let x = (0..<9).flatMap { _ in Self.block(kind: kind, rng: &rng) }
                for type in [Int32(GT_Q8), Int32(GT_Q4)] {
                    let reference = quantize(x, type: type, isa: nil)
                    for isa in paths {
                        XCTAssertEqual(quantize(x, type: type, isa: isa), reference, "kind \(kind) type \(type) isa \(isa)")
                    }
                }
            }
        }
    }

    /// The bytes the q8 / q4 quantizers wrote before the AVX2 rewrite (commit 3f8a0f2, measured
    /// with its run-time-selected AVX2 build; the same data regenerated in C with this SplitMix).
    func testReferenceMatchesTheBytesOfThePreviousQuantizer() {
        var rng = SplitMix(seed: 2024)
        let scales: [Float] = [1e-6, 1e-3, 0.02, 1, 300]
        var x: [Float] = []
        for _ in 0..<4096 {
            let scale = scales[Int(rng.next() % 5)]
            let kind = rng.next() % 8
            for i in 0..<32 {
                var v = rng.normal(scale)
                switch kind {
                case 0: v = 0
                case 1: v = scale
                case 2: v = rng.next() & 1 == 1 ? scale : -scale
                case 3 where i == 9: v = 25 * scale
                default: break
                }
                x.append(v)
            }
        }
        var paths: [Int32?] = [nil] + simdPaths.map { Optional($0) }
        #if !arch(x86_64)
        paths.append(Int32(GT_ISA_SCALAR))  // the portable path is the reference off x86-64
        #endif
        for isa in paths {
            let q4 = quantize(x, type: Int32(GT_Q4), isa: isa)
            let q8 = quantize(x, type: Int32(GT_Q8), isa: isa)
            XCTAssertEqual(q4.withUnsafeBytes { gt_xxh64($0.baseAddress, $0.count, 0) }, 0xA542_ECBD_F4E7_3EDC, "q4, isa \(isa ?? -1)")
            XCTAssertEqual(q8.withUnsafeBytes { gt_xxh64($0.baseAddress, $0.count, 0) }, 0x0601_2C08_23CF_CF18, "q8, isa \(isa ?? -1)")
        }
    }

    func testDefaultPathIsTheSelectedOne() {
        let x = Self.rows(blocks: 33, seed: 5)
        for type in [Int32(GT_Q8), Int32(GT_Q4)] {
            var out = [UInt8](repeating: 0, count: gt_row_bytes(type, x.count))
            gt_quantize_row(type, x, x.count, &out)
            XCTAssertEqual(out, quantize(x, type: type, isa: gt_kernel_isa_id()))
        }
    }

    func testFirstNonFinite() {
        for n in [0, 1, 63, 64, 65, 200, 4096 + 7] {
            var x = [Float](repeating: 1, count: n)
            XCTAssertEqual(gt_first_nonfinite(x, n), n)
            for bad in [0, 63, 64, 65, n - 1] where bad >= 0 && bad < n {
                for value in [Float.nan, .infinity, -.infinity] {
                    x[bad] = value
                    if bad + 1 < n { x[n - 1] = .nan }  // a later one must not be reported
                    XCTAssertEqual(gt_first_nonfinite(x, n), bad, "n \(n) at \(bad)")
                    x = [Float](repeating: 1, count: n)
                }
            }
        }
    }

    /// gt_convert_row = widen, check, quantize, for every source type, and reports the first
    /// non-finite value.
    func testConvertRowEqualsTheSeparateSteps() {
        var rng = SplitMix(seed: 77)
        for n in [32, 96, 2048 + 32, 16384] {
            let values = (0..<n).map { _ in rng.normal(0.05) }
            let sources: [(Int32, [UInt8])] = [
                (Int32(GT_SRC_BF16), values.flatMap { v -> [UInt8] in let h = gt_f32_to_bf16(v); return [UInt8(h & 0xFF), UInt8(h >> 8)] }),
                (Int32(GT_SRC_F16), values.flatMap { v -> [UInt8] in let h = gt_f32_to_f16(v); return [UInt8(h & 0xFF), UInt8(h >> 8)] }),
                (Int32(GT_SRC_F32), values.flatMap { v -> [UInt8] in withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init) }),
            ]
            for (srcType, bytes) in sources {
                // One byte of offset: sources need not be aligned.
                let shifted = [0] + bytes
                for type in [Int32(GT_F32), Int32(GT_BF16), Int32(GT_Q8), Int32(GT_Q4)] {
                    var widened = [Float](repeating: 0, count: n)
                    shifted.withUnsafeBytes { gt_widen_to_f32(srcType, $0.baseAddress! + 1, n, &widened) }
                    var expected = [UInt8](repeating: 0, count: gt_row_bytes(type, n))
                    gt_quantize_row(type, widened, n, &expected)
                    var out = [UInt8](repeating: 0, count: expected.count)
                    var scratch = [Float](repeating: 0, count: n)
                    let result = shifted.withUnsafeBytes { gt_convert_row(srcType, $0.baseAddress! + 1, n, type, &out, &scratch) }
                    XCTAssertEqual(result, n)
                    XCTAssertEqual(out, expected, "source \(srcType) type \(type) n \(n)")
                    XCTAssertEqual(scratch, widened)
                }
                // Non-finite values: the first one's index.
                let size = srcType == Int32(GT_SRC_F32) ? 4 : 2
                for bad in [0, 17, n / 2, n - 1] {
                    var corrupt = bytes
                    for at in [bad, n - 1] {
                        switch srcType {
                        case Int32(GT_SRC_BF16): corrupt[at * 2] = 0x80; corrupt[at * 2 + 1] = 0x7F   // +inf
                        case Int32(GT_SRC_F16): corrupt[at * 2] = 0x01; corrupt[at * 2 + 1] = 0x7C    // NaN
                        default: corrupt.replaceSubrange(at * size ..< at * size + 4, with: [0, 0, 0xC0, 0x7F])  // NaN
                        }
                    }
                    var out = [UInt8](repeating: 0, count: gt_row_bytes(Int32(GT_Q4), n))
                    var scratch = [Float](repeating: 0, count: n)
                    let result = corrupt.withUnsafeBytes { gt_convert_row(srcType, $0.baseAddress, n, Int32(GT_Q4), &out, &scratch) }
                    XCTAssertEqual(result, bad, "source \(srcType) n \(n)")
                }
            }
        }
    }
}

/// The K-quant quantizers (GT_Q4K / GT_Q6K, raw type ids): every SIMD path against the portable
/// reference, bit for bit, on super-blocks built from the edge kinds above (mixed within a
/// super-block, so one sub-block's extreme scale meets the others' in the six- and eight-bit
/// scale rounding), and the default path against the reference.
extension QuantizeSIMDTests {
    var kPaths: [Int32] {
        [GT_ISA_SCALAR, GT_ISA_AVX2, GT_ISA_AVX2_VNNI, GT_ISA_AVX512_VNNI, GT_ISA_NEON, GT_ISA_NEON_DOTPROD]
            .map { Int32($0) }.filter { gt_isa_supported($0) != 0 }
    }

    func testKQuantPathsMatchTheReferenceBitForBit() {
        for (seed, superBlocks) in [(UInt64(101), 1), (102, 2), (103, 3), (104, 9), (105, 17)] {
            let x = Self.rows(blocks: superBlocks * 8, seed: seed)
            for type in [Int32(GT_Q4K), Int32(GT_Q6K)] {
                let ref = quantize(x, type: type, isa: nil)
                for isa in kPaths {
                    XCTAssertEqual(quantize(x, type: type, isa: isa), ref, "type \(type) path \(String(cString: gt_isa_name(isa))) seed \(seed)")
                }
                var out = [UInt8](repeating: 0, count: ref.count)
                gt_quantize_row(type, x, x.count, &out)
                XCTAssertEqual(out, ref, "type \(type): gt_quantize_row")
            }
        }
    }

    /// Whole super-blocks of one edge kind each (kinds 8 and 9 included: overflowing squares and
    /// subnormals); every dequantized value is finite.
    func testKQuantEveryEdgeKindAlone() {
        for kind in 0..<13 {
            var rng = SplitMix(seed: UInt64(200 + kind))
            var x: [Float] = []
            for _ in 0..<16 { x += Self.block(kind: kind, rng: &rng) }
            for type in [Int32(GT_Q4K), Int32(GT_Q6K)] {
                let ref = quantize(x, type: type, isa: nil)
                for isa in kPaths { XCTAssertEqual(quantize(x, type: type, isa: isa), ref, "kind \(kind) type \(type) isa \(isa)") }
                var y = [Float](repeating: .nan, count: x.count)
                gt_dequantize_row(type, ref, x.count, &y)
                XCTAssertTrue(y.allSatisfy(\.isFinite), "kind \(kind) type \(type): finite values")
            }
        }
    }
}
