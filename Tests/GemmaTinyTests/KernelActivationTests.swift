import Foundation
import GemmaKernels
@testable import GemmaTiny
import XCTest

/// `gt_gelu_tanh_mul` (ops.c) on every path this CPU runs: the AVX-512 copy (written out in
/// intrinsics), the AVX2 copy and the portable one (compiled from one body) give the same bits,
/// and each is within 2e-6 + 1.2e-7 |2u| relative (u = sqrt(2/pi) (x + 0.044715 x^3): its rounding
/// grows through exp(-2u)), plus 1e-30 absolute (the exponential is clamped at e^88), of an f64
/// GELU-tanh times `up`.
final class KernelActivationTests: XCTestCase {
    func testKernelGeluTanhMulPathsBitIdenticalAndAccurate() {
        let before = gt_kernel_isa_id()
        defer { gt_set_kernel_isa(before) }
        var rng = SplitMix(seed: 21)
        // Random values at several scales, then the edges: zeros, tiny and huge, the clamp of the
        // exponential (|2u| near 87..88), infinities and NaN. 1037 values: a tail after 16 and 8.
        var gate: [Float] = (0..<900).map { i in rng.normal([0.01, 1, 4, 30][i % 4]) }
        gate += [0, -0, 1e-30, -1e-30, .leastNonzeroMagnitude, 3e38, -3e38, .infinity, -.infinity, .nan, 5.4, -5.4, 5.6, -5.6, 6, -6, 9.9, -9.9]
        while gate.count < 1037 { gate.append(rng.normal(2)) }
        let up: [Float] = gate.indices.map { _ in rng.normal(3) }
        let paths = [GT_ISA_AVX512_VNNI, GT_ISA_AVX2, GT_ISA_SCALAR].map { Int32($0) }.filter { gt_isa_supported($0) != 0 || $0 == GT_ISA_SCALAR }
        var results: [(Int32, [Float])] = []
        for isa in paths {
            XCTAssertEqual(gt_set_kernel_isa(isa), isa)
            var g = gate
            gt_gelu_tanh_mul(&g, up, g.count)
            results.append((isa, g))
        }
        let reference = results[0].1
        for (isa, g) in results.dropFirst() {
            for i in g.indices where g[i].bitPattern != reference[i].bitPattern {
                XCTFail("\(String(cString: gt_isa_name(isa))) [\(i)] gate \(gate[i]): \(g[i]) vs \(reference[i]) on \(String(cString: gt_isa_name(results[0].0)))")
                break
            }
        }
        for i in gate.indices where gate[i].isFinite && abs(gate[i]) < 1e4 {
            let x = Double(gate[i])
            // 0.5 x (1 + tanh(u)) as x / (1 + exp(-2u)): no cancellation for negative x.
            let u = 0.7978845608028654 * (x + 0.044715 * x * x * x)
            let expected = x / (1 + exp(-2 * u)) * Double(up[i])
            // The f32 rounding of u, relative 6e-8, grows |2u| times through the exponential.
            let relative = 2e-6 + 1.2e-7 * abs(2 * u)
            XCTAssertLessThanOrEqual(abs(Double(reference[i]) - expected), relative * abs(expected) + 1e-30, "gate \(gate[i]) up \(up[i])")
        }
        XCTAssertTrue(reference[gate.firstIndex(where: { $0.isNaN })!].isNaN, "NaN in, NaN out")
    }
}
