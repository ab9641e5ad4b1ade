import GemmaKernels
@testable import GemmaTiny
import XCTest

/// `SIMDKernels(preciseInputs: true)`: quantized products also run on their inputs' int8
/// rounding error and add the two outputs. Checked on every ISA path of this CPU against the
/// products of the dequantized weights with the f32 inputs (`gt_dot_scalar`; f64 for the K
/// types): each output within 1/100 of the int8 rounding bound that the default mode has to
/// meet (plus f32 summation), and the whole error far below the default mode's on the same
/// problem. Batched equals one at a time, threaded equals single-threaded, shared-input products
/// equal separate ones, bit for bit, as for the default mode.
final class KernelPreciseInputsTests: XCTestCase {
    /// One product to check: the weights, inputs, exact products and their bounds.
    struct Case {
        let name: String
        let type: StorageType
        let rows: Int, cols: Int, count: Int
        let weights: [UInt8]
        let x: [Float]
        let reference: [Double]
        /// The default mode's bound (int8 inputs), and f32 summation's allowance.
        let int8Bound: [Double], summation: [Double]

        func withMatrix<R>(_ body: (WeightMatrix) -> R) -> R {
            weights.withUnsafeBytes { body(WeightMatrix(name: name, type: type, rows: rows, cols: cols, base: $0.baseAddress!)) }
        }
    }

    static func cases() -> [Case] {
        var rng = SplitMix(seed: 21)
        var cases: [Case] = []
        for type in [StorageType.q8, .q4, .q5] {
            let p = KernelSIMDTests.Problem(type, rows: 67, cols: 2080, maxCount: 5, rng: &rng)
            cases.append(Case(name: "\(type)", type: type, rows: p.rows, cols: p.cols, count: p.maxCount, weights: p.stored, x: p.x,
                              reference: p.reference.map(Double.init), int8Bound: p.bound,
                              summation: p.magnitude.map { 2e-5 * $0 }))
        }
        for (kind, type) in [(KernelKQuantTests.q4k, StorageType.q4k), (KernelKQuantTests.q6k, .q6k)] {
            let p = KernelKQuantTests.Problem(kind, rows: 37, cols: 2048, maxCount: 5, rng: &rng)
            // The K problems' tolerance is bound * 1.0001 + the summation allowance.
            let summation = zip(p.tolerance, p.int8Bound).map { max(0, $0 - $1 * 1.0001) }
            cases.append(Case(name: kind.name, type: type, rows: p.rows, cols: p.cols, count: p.maxCount, weights: p.w, x: p.x,
                              reference: p.reference, int8Bound: p.int8Bound, summation: summation))
        }
        return cases
    }

    func run(_ kernels: SIMDKernels, _ c: Case, count: Int) -> [Float] {
        var y = [Float](repeating: .nan, count: count * c.rows)
        c.withMatrix { kernels.matmul($0, c.x, xStride: c.cols, &y, yStride: c.rows, count: count) }
        return y
    }

    func testPreciseInputsAreAccurateOnEveryPath() {
        let cases = Self.cases()
        for isa in SIMDKernels.supportedISAs {
            let precise = SIMDKernels(threads: 1, isa: isa, preciseInputs: true)
            let plain = SIMDKernels(threads: 1, isa: isa)
            XCTAssertEqual(precise.name, "\(isa), precise inputs")
            for c in cases {
                let y = run(precise, c, count: c.count), y8 = run(plain, c, count: c.count)
                var worst = 0.0, squared = 0.0, squared8 = 0.0
                for k in 0..<(c.count * c.rows) {
                    let error = abs(Double(y[k]) - c.reference[k])
                    worst = max(worst, error / (c.int8Bound[k] / 100 + c.summation[k] + 1e-30))
                    squared += error * error
                    squared8 += (Double(y8[k]) - c.reference[k]) * (Double(y8[k]) - c.reference[k])
                }
                XCTAssertLessThanOrEqual(worst, 1, "\(isa) \(c.name): worst error / (int8 bound / 100 + summation)")
                // The int8 rounding's error shrinks about 127 times; f32 summation is what is left.
                XCTAssertLessThan(squared, squared8 / 400, "\(isa) \(c.name): RMS error not 20x below the default mode's")
            }
        }
    }

    func testPreciseInputsBatchedThreadedAndSharedAreBitIdentical() {
        let cases = Self.cases()
        for isa in SIMDKernels.supportedISAs {
            let single = SIMDKernels(threads: 1, isa: isa, preciseInputs: true)
            let threaded = SIMDKernels(threads: 3, isa: isa, preciseInputs: true)
            threaded.minimumParallelWork = 0
            for c in cases {
                let all = run(single, c, count: c.count)
                XCTAssertEqual(run(threaded, c, count: c.count).map(\.bitPattern), all.map(\.bitPattern), "\(isa) \(c.name): threaded")
                for t in 0..<c.count {
                    var one = [Float](repeating: .nan, count: c.rows)
                    c.withMatrix { m in c.x.withUnsafeBufferPointer { threaded.matvec(m, $0.baseAddress! + t * c.cols, &one) } }
                    XCTAssertEqual(one.map(\.bitPattern), all[(t * c.rows)..<((t + 1) * c.rows)].map(\.bitPattern),
                                   "\(isa) \(c.name): token \(t) alone")
                }
            }
            // Two quantized products of one input (as a layer's gate and up) in one dispatch.
            let pair = cases.filter { $0.cols == 2080 }.prefix(2)
            let (a, b) = (pair.first!, pair.last!)
            for kernels in [single, threaded] {
                for count in [1, 4] {
                    var ya = [Float](repeating: .nan, count: count * a.rows), yb = [Float](repeating: .nan, count: count * b.rows)
                    a.withMatrix { ma in
                        b.withMatrix { mb in
                            ya.withUnsafeMutableBufferPointer { pa in
                                yb.withUnsafeMutableBufferPointer { pb in
                                    kernels.matmul(SharedInputProducts((ma, pa.baseAddress!), (mb, pb.baseAddress!)), a.x, count: count)
                                }
                            }
                        }
                    }
                    var separate = [Float](repeating: .nan, count: count * b.rows)
                    b.withMatrix { kernels.matmul($0, a.x, xStride: b.cols, &separate, yStride: b.rows, count: count) }
                    XCTAssertEqual(ya.map(\.bitPattern), run(kernels, a, count: count).map(\.bitPattern), "\(isa) shared, first")
                    XCTAssertEqual(yb.map(\.bitPattern), separate.map(\.bitPattern), "\(isa) shared, second")
                }
            }
        }
    }

    /// Float weights take f32 inputs already: the flag changes nothing there. A NaN input still
    /// gives NaN outputs (its block's scale is NaN, and so is its rounding error).
    func testPreciseInputsFloatWeightsAndNaN() {
        var rng = SplitMix(seed: 22)
        for isa in SIMDKernels.supportedISAs {
            let precise = SIMDKernels(threads: 2, isa: isa, preciseInputs: true), plain = SIMDKernels(threads: 2, isa: isa)
            for type in [StorageType.f32, .bf16] {
                let p = KernelSIMDTests.Problem(type, rows: 40, cols: 300, maxCount: 3, rng: &rng)
                var a = [Float](repeating: .nan, count: 3 * p.rows), b = a
                p.stored.withUnsafeBytes { bytes in
                    precise.matmul(p.matrix(bytes), p.x, xStride: p.cols, &a, yStride: p.rows, count: 3)
                    plain.matmul(p.matrix(bytes), p.x, xStride: p.cols, &b, yStride: p.rows, count: 3)
                }
                XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), "\(isa) \(type)")
            }
            var p = KernelSIMDTests.Problem(.q8, rows: 5, cols: 64, maxCount: 2, rng: &rng)
            p.x[64 + 37] = .nan
            var y = [Float](repeating: 0, count: 2 * p.rows)
            p.stored.withUnsafeBytes { precise.matmul(p.matrix($0), p.x, xStride: p.cols, &y, yStride: p.rows, count: 2) }
            XCTAssertTrue(y[0..<5].allSatisfy { $0.isFinite }, "\(isa): the finite token")
            XCTAssertTrue(y[5..<10].allSatisfy { $0.isNaN }, "\(isa): the token with a NaN")
        }
    }

    /// gt_activation_residuals: x = d q + r for every input, |r| at most half a step, exactly
    /// what the prepared bytes leave over (checked in f64).
    func testActivationResiduals() {
        var rng = SplitMix(seed: 23)
        let cols = 256, count = 3
        let p = KernelSIMDTests.Problem(.q4, rows: 1, cols: cols, maxCount: count, rng: &rng)
        let bytes = gt_activation_bytes(Int32(StorageType.q4.rawValue), cols)
        var act = [UInt8](repeating: 0, count: bytes * count)
        act.withUnsafeMutableBytes { gt_prepare_activations(Int32(StorageType.q4.rawValue), p.x, cols, count, cols, $0.baseAddress!) }
        var r = [Float](repeating: .nan, count: count * 300)
        act.withUnsafeBytes { gt_activation_residuals(Int32(StorageType.q4.rawValue), p.x, cols, 0, count, cols, $0.baseAddress!, &r, 300) }
        let nb = cols / 32
        for t in 0..<count {
            act.withUnsafeBytes { a in
                let base = a.baseAddress! + t * bytes
                let q = base.assumingMemoryBound(to: Int8.self)
                let d = (base + nb * 32).assumingMemoryBound(to: Float.self)
                for i in 0..<cols {
                    let step = Double(d[i / 32])
                    let exact = Double(p.x[t * cols + i]) - step * Double(q[i])
                    let rv = Double(r[t * 300 + i])
                    XCTAssertEqual(rv, exact, accuracy: abs(exact) * 1e-7 + 1e-45, "token \(t) [\(i)]")
                    XCTAssertLessThanOrEqual(abs(rv), step / 2 * (1 + 1e-5) + 1e-37, "token \(t) [\(i)]: more than half a step")
                }
            }
            XCTAssertTrue(r[(t * 300 + cols)..<((t + 1) * 300)].allSatisfy { $0.isNaN }, "wrote past the row")
        }
        // Float weights have no rounding error to give.
        var untouched = [Float](repeating: .nan, count: cols)
        act.withUnsafeBytes { gt_activation_residuals(Int32(StorageType.f32.rawValue), p.x, cols, 0, 1, cols, $0.baseAddress!, &untouched, cols) }
        XCTAssertTrue(untouched.allSatisfy { $0.isNaN })
    }
}
