import Foundation
import GemmaKernels
import GemmaQuantizeKernels
@testable import GemmaTiny
import XCTest

/// The fused dequantize-dot kernels (`gt_prepare_activations` + `gt_matmul`) on every ISA path
/// this CPU supports, and `SIMDKernels` on top of them, against the scalar reference
/// `gt_dot_scalar` (f32 inputs, one dot product at a time).
///
/// Tolerances:
/// - f32 / bf16 weights take the f32 inputs unchanged; the paths differ from the reference only
///   in the order of the f32 sums. Each side's rounding error is far below 1e-5 of sum |w x| at
///   these lengths (random-walk growth ~ sqrt(n) * 6e-8), so 2e-5 * sum |w x| bounds the gap.
/// - q8 / q4 weights multiply int8 inputs exactly; rounding an input to the nearest of 255
///   levels (step max|x| / 127 per block of 32) moves it by at most half a step, so the result
///   moves by at most sum over blocks of (max|x| / 254) * sum |w| in the block. We allow that
///   bound plus 1e-5 * sum |w x| for f32 rounding.
/// - A SIMD path against the portable scalar path of the same kernels (same int8 inputs):
///   1e-5 * sum |w x|; batched against single-token calls and split rows against one call:
///   bit for bit (every row is computed by the same operations whatever the tiling).
final class KernelSIMDTests: XCTestCase {
    static let types: [StorageType] = [.f32, .bf16, .q8, .q4, .q5]

    /// A random problem: stored weights, their dequantized values, inputs, the reference
    /// products and the tolerance of each.
    struct Problem {
        let type: StorageType
        let rows: Int, cols: Int, maxCount: Int
        let rowBytes: Int
        var stored: [UInt8]
        var x: [Float]          // maxCount vectors of cols
        var reference: [Float]  // [t * rows + r]
        var magnitude: [Double] // sum |w x|
        var bound: [Double]     // input-rounding bound (q types)

        init(_ type: StorageType, rows: Int, cols: Int, maxCount: Int, rng: inout SplitMix) {
            self.type = type
            self.rows = rows
            self.cols = cols
            self.maxCount = maxCount
            let rowBytes = type.rowBytes(cols)!
            self.rowBytes = rowBytes
            var stored = [UInt8](repeating: 0, count: rows * rowBytes)
            var dequantized = [Float](repeating: 0, count: rows * cols)
            var row = [Float](repeating: 0, count: cols)
            for r in 0..<rows {
                let scale = 0.05 + Float(rng.next() % 100) / 100
                for c in 0..<cols { row[c] = rng.normal(scale) }
                stored.withUnsafeMutableBytes { out in
                    dequantized.withUnsafeMutableBufferPointer { d in
                        gt_quantize_row(Int32(type.rawValue), row, cols, out.baseAddress! + r * rowBytes)
                        gt_dequantize_row(Int32(type.rawValue), out.baseAddress! + r * rowBytes, cols, d.baseAddress! + r * cols)
                    }
                }
            }
            self.stored = stored
            // Inputs with a spread of magnitudes per block, a zero block now and then, outliers.
            x = [Float](repeating: 0, count: maxCount * cols)
            for i in stride(from: 0, to: x.count, by: 32) {
                let scale = Float(pow(10.0, Double(rng.next() % 400) / 100 - 2))
                let zero = rng.next() % 19 == 0
                for j in i..<min(i + 32, x.count) {
                    x[j] = zero ? 0 : rng.normal(scale) * (rng.next() % 53 == 0 ? 20 : 1)
                }
            }
            var reference = [Float](repeating: 0, count: maxCount * rows)
            var magnitude = [Double](repeating: 0, count: maxCount * rows)
            var bound = [Double](repeating: 0, count: maxCount * rows)
            let x = self.x
            let quantized = type.isQuantized
            for t in 0..<maxCount {
                for r in 0..<rows {
                    let k = t * rows + r
                    reference[k] = stored.withUnsafeBytes { w in
                        x.withUnsafeBufferPointer { gt_dot_scalar(Int32(type.rawValue), w.baseAddress! + r * rowBytes, $0.baseAddress! + t * cols, cols) }
                    }
                    var mag = 0.0, qb = 0.0
                    for c in 0..<cols { mag += abs(Double(dequantized[r * cols + c]) * Double(x[t * cols + c])) }
                    if quantized {
                        for b in 0..<cols / 32 {
                            var amax = 0.0, wsum = 0.0
                            for i in 0..<32 {
                                amax = max(amax, abs(Double(x[t * cols + b * 32 + i])))
                                wsum += abs(Double(dequantized[r * cols + b * 32 + i]))
                            }
                            qb += amax / 254 * wsum
                        }
                    }
                    magnitude[k] = mag
                    bound[k] = qb
                }
            }
            self.reference = reference
            self.magnitude = magnitude
            self.bound = bound
        }

        func tolerance(_ k: Int) -> Double {
            (type.isQuantized ? bound[k] * 1.0001 + 1e-5 * magnitude[k] : 2e-5 * magnitude[k]) + 1e-30
        }

        /// Prepared inputs for all maxCount vectors.
        func prepared() -> [UInt8] {
            let bytes = gt_activation_bytes(Int32(type.rawValue), cols)
            var act = [UInt8](repeating: 0, count: bytes * maxCount)
            act.withUnsafeMutableBytes { gt_prepare_activations(Int32(type.rawValue), x, cols, maxCount, cols, $0.baseAddress!) }
            return act
        }

        /// gt_matmul_isa on rows [begin, end) for `count` tokens; untouched outputs stay NaN.
        func run(isa: Int32, act: [UInt8], count: Int, begin: Int, end: Int) -> [Float] {
            var y = [Float](repeating: .nan, count: maxCount * rows)
            stored.withUnsafeBytes { w in
                act.withUnsafeBytes { a in
                    gt_matmul_isa(isa, Int32(type.rawValue), w.baseAddress!, rowBytes, cols, a.baseAddress!, count, &y, rows, begin, end)
                }
            }
            return y
        }

        var matrix: (UnsafeRawBufferPointer) -> WeightMatrix {
            { WeightMatrix(name: "w", type: self.type, rows: self.rows, cols: self.cols, base: $0.baseAddress!) }
        }
    }

    static var isas: [Int32] {
        (0..<GT_ISA_COUNT).map { Int32($0) }.filter { gt_isa_supported($0) != 0 }
    }

    static func isaName(_ isa: Int32) -> String { String(cString: gt_isa_name(isa)) }

    /// Checks one problem on every path, counts 1...maxCount, rows [begin, end).
    func check(_ p: Problem, begin: Int, end: Int, file: StaticString = #filePath, line: UInt = #line) {
        let act = p.prepared()
        let actBytes = gt_activation_bytes(Int32(p.type.rawValue), p.cols)
        for isa in Self.isas {
            let name = "\(Self.isaName(isa)) \(p.type) \(p.rows)x\(p.cols) rows [\(begin), \(end))"
            for count in 1...p.maxCount {
                let y = p.run(isa: isa, act: act, count: count, begin: begin, end: end)
                let scalar = p.run(isa: Int32(GT_ISA_SCALAR), act: act, count: count, begin: begin, end: end)
                var worst = 0.0, badRef = 0, badScalar = 0, outside = 0
                for t in 0..<p.maxCount {
                    for r in 0..<p.rows {
                        let k = t * p.rows + r
                        guard t < count, r >= begin, r < end else {
                            if !y[k].isNaN { outside += 1 }
                            continue
                        }
                        let err = abs(Double(y[k]) - Double(p.reference[k]))
                        worst = max(worst, err / p.tolerance(k))
                        if !(err <= p.tolerance(k)) { badRef += 1 }
                        if !(abs(Double(y[k]) - Double(scalar[k])) <= 1e-5 * p.magnitude[k] + 1e-30) { badScalar += 1 }
                    }
                }
                XCTAssertEqual(badRef, 0, "\(name) count \(count): vs gt_dot_scalar, worst error / tolerance \(worst)", file: file, line: line)
                XCTAssertEqual(badScalar, 0, "\(name) count \(count): vs the scalar path", file: file, line: line)
                XCTAssertEqual(outside, 0, "\(name) count \(count): wrote outside its rows", file: file, line: line)
                // The batch equals single-token calls, bit for bit.
                for t in 0..<count {
                    var single = [Float](repeating: .nan, count: p.rows)
                    p.stored.withUnsafeBytes { w in
                        act.withUnsafeBytes { a in
                            gt_matmul_isa(isa, Int32(p.type.rawValue), w.baseAddress!, p.rowBytes, p.cols,
                                          a.baseAddress! + t * actBytes, 1, &single, 0, begin, end)
                        }
                    }
                    XCTAssertEqual(Array(single[begin..<end]), Array(y[(t * p.rows + begin)..<(t * p.rows + end)]),
                                   "\(name) count \(count): token \(t) batched differs from alone", file: file, line: line)
                }
            }
        }
    }

    func testKernelSIMDSmallShapesAllTypes() {
        var rng = SplitMix(seed: 1)
        // (rows, cols, begin, end); quantized rows are whole blocks, float rows any length.
        let quantized = [(1, 32, 0, 1), (3, 64, 1, 3), (7, 96, 2, 7), (17, 160, 3, 17), (64, 2080, 5, 61)]
        let float = [(1, 1, 0, 1), (3, 7, 1, 3), (7, 33, 2, 7), (17, 95, 3, 17), (64, 2081, 5, 61), (9, 96, 0, 9)]
        for type in Self.types {
            for (rows, cols, begin, end) in type.isQuantized ? quantized : float {
                let p = Problem(type, rows: rows, cols: cols, maxCount: 9, rng: &rng)
                check(p, begin: begin, end: end)
                check(p, begin: 0, end: rows)
            }
        }
    }

    func testKernelSIMDLongRowsAllTypes() {
        var rng = SplitMix(seed: 2)
        for type in Self.types {
            let cols = type.isQuantized ? 16384 + 32 * 3 : 16384 + 35
            let p = Problem(type, rows: 7, cols: cols, maxCount: 6, rng: &rng)
            check(p, begin: 1, end: 7)
        }
    }

    func testKernelSIMDPreparedInputs() {
        var rng = SplitMix(seed: 3)
        let cols = 2080
        let x = (0..<cols).map { i in i % 320 < 32 ? 0 : rng.normal(Float(i % 7 + 1)) }
        let nb = cols / 32
        let bytes = gt_activation_bytes(Int32(GT_Q4), cols)
        XCTAssertEqual(bytes % 64, 0)
        XCTAssertEqual(gt_activation_bytes(Int32(GT_Q8), 33), 0, "a partial block has no int8 layout")
        XCTAssertEqual(gt_activation_bytes(Int32(GT_BF16), 33), 192)
        var act = [UInt8](repeating: 0, count: bytes)
        act.withUnsafeMutableBytes { gt_prepare_activations(Int32(GT_Q4), x, cols, 1, cols, $0.baseAddress!) }
        act.withUnsafeBytes { a in
            let q = a.baseAddress!.assumingMemoryBound(to: Int8.self)
            let d = (a.baseAddress! + nb * 32).assumingMemoryBound(to: Float.self)
            let s = (a.baseAddress! + nb * 36).assumingMemoryBound(to: Int32.self)
            for b in 0..<nb {
                let block = x[(b * 32)..<(b * 32 + 32)]
                let amax = block.map { abs($0) }.max()!
                XCTAssertEqual(d[b], amax / 127, accuracy: amax * 1e-6)
                var sum: Int32 = 0, qmax: Int32 = 0
                for i in 0..<32 {
                    let v = Int32(q[b * 32 + i])
                    sum += v
                    qmax = max(qmax, abs(v))
                    XCTAssertLessThanOrEqual(abs(x[b * 32 + i] - d[b] * Float(v)), amax / 254 * 1.0001, "block \(b) element \(i)")
                }
                XCTAssertEqual(s[b], -2 * sum, "stored as -2 x the block sum")
                XCTAssertEqual(qmax, amax > 0 ? 127 : 0)
            }
        }
    }

    /// NaN in the input reaches the output instead of vanishing in the int8 rounding.
    func testKernelSIMDNonFiniteInputs() {
        var rng = SplitMix(seed: 4)
        for type in Self.types {
            var p = Problem(type, rows: 5, cols: 64, maxCount: 1, rng: &rng)
            p.x[37] = .nan
            let act = p.prepared()
            for isa in Self.isas {
                let y = p.run(isa: isa, act: act, count: 1, begin: 0, end: 5)
                XCTAssertTrue(y.allSatisfy { $0.isNaN }, "\(Self.isaName(isa)) \(type)")
            }
        }
    }

    /// `SIMDKernels`: threaded equals single-threaded bit for bit, batched equals one at a time,
    /// and both are within the tolerance of the reference kernels.
    func testKernelSIMDKernelsThreadedEqualsSingleThreaded() {
        var rng = SplitMix(seed: 5)
        for isaName in SIMDKernels.supportedISAs {
            let single = SIMDKernels(threads: 1, isa: isaName)
            let threaded = SIMDKernels(threads: 3, isa: isaName)
            threaded.minimumParallelWork = 0
            XCTAssertEqual(single.name, isaName)
            XCTAssertEqual(threaded.name, "\(isaName) x3 threads")
            for type in Self.types {
                let cols = type.isQuantized ? 2080 : 2085
                let p = Problem(type, rows: 133, cols: cols, maxCount: 9, rng: &rng)
                p.stored.withUnsafeBytes { bytes in
                    let m = p.matrix(bytes)
                    for count in [1, 2, 5, 9] {
                        var a = [Float](repeating: .nan, count: count * p.rows)
                        var b = [Float](repeating: .nan, count: count * p.rows)
                        single.matmul(m, p.x, xStride: p.cols, &a, yStride: p.rows, count: count)
                        threaded.matmul(m, p.x, xStride: p.cols, &b, yStride: p.rows, count: count)
                        XCTAssertEqual(a, b, "\(isaName) \(type) count \(count): threaded differs")
                        for k in 0..<(count * p.rows) {
                            XCTAssertLessThanOrEqual(abs(Double(a[k]) - Double(p.reference[k])), p.tolerance(k), "\(isaName) \(type) [\(k)]")
                        }
                        var one = [Float](repeating: .nan, count: p.rows)
                        p.x.withUnsafeBufferPointer { threaded.matvec(m, $0.baseAddress! + (count - 1) * p.cols, &one) }
                        XCTAssertEqual(one, Array(b[((count - 1) * p.rows)...]), "\(isaName) \(type): matvec differs from the batch")
                    }
                }
            }
        }
    }

    /// Products that share an input (`SharedInputProducts`: one input preparation, one dispatch)
    /// equal separate `matmul` / `matvec` calls bit for bit: quantized types together (one
    /// prepared input), a float type with itself, and mixes that cannot share (run one by one).
    func testKernelSIMDSharedInputProductsEqualSeparateProducts() {
        var rng = SplitMix(seed: 9)
        let cols = 2080
        let mixes: [[StorageType]] = [[.q8, .q4, .q5], [.q4, .q4], [.f32, .f32], [.q8, .f32, .q4], [.bf16, .f32]]
        let rows = [133, 40, 67]
        for isaName in SIMDKernels.supportedISAs {
            for threads in [1, 3] {
                let kernels = SIMDKernels(threads: threads, isa: isaName)
                kernels.minimumParallelWork = 0
                for mix in mixes {
                    let problems = mix.enumerated().map { i, type in
                        Problem(type, rows: rows[i], cols: cols, maxCount: 9, rng: &rng)
                    }
                    let x = problems[0].x
                    for count in [1, 2, 9] {
                        var separate: [[Float]] = []
                        let outputs = problems.map { p in
                            let y = UnsafeMutablePointer<Float>.allocate(capacity: count * p.rows)
                            y.initialize(repeating: .nan, count: count * p.rows)
                            return y
                        }
                        defer { outputs.forEach { $0.deallocate() } }
                        for p in problems {
                            var y = [Float](repeating: .nan, count: count * p.rows)
                            p.stored.withUnsafeBytes { kernels.matmul(p.matrix($0), x, xStride: cols, &y, yStride: p.rows, count: count) }
                            separate.append(y)
                        }
                        withMatrices(problems) { m in
                            let products = m.count == 2
                                ? SharedInputProducts((m[0], outputs[0]), (m[1], outputs[1]))
                                : SharedInputProducts((m[0], outputs[0]), (m[1], outputs[1]), (m[2], outputs[2]))
                            kernels.matmul(products, x, count: count)
                        }
                        let shared = problems.indices.map { Array(UnsafeBufferPointer(start: outputs[$0], count: count * problems[$0].rows)) }
                        for i in problems.indices {
                            XCTAssertEqual(shared[i], separate[i], "\(isaName) x\(threads) \(mix) count \(count): product \(i) differs")
                        }
                    }
                }
            }
        }
    }

    /// The problems' weight matrices, valid inside `body`.
    private func withMatrices(_ problems: [Problem], _ body: ([WeightMatrix]) -> Void) {
        func nest(_ i: Int, _ acc: [WeightMatrix]) {
            if i == problems.count { return body(acc) }
            problems[i].stored.withUnsafeBytes { nest(i + 1, acc + [problems[i].matrix($0)]) }
        }
        nest(0, [])
    }

    /// Strided inputs and outputs (yStride > rows, xStride > cols), as the session's buffers are.
    func testKernelSIMDKernelsStrides() {
        var rng = SplitMix(seed: 6)
        let kernels = SIMDKernels(threads: 2)
        kernels.minimumParallelWork = 0
        let p = Problem(.q4, rows: 67, cols: 96, maxCount: 3, rng: &rng)
        var wide = [Float](repeating: 0, count: 3 * 100)
        for t in 0..<3 { for c in 0..<96 { wide[t * 100 + c] = p.x[t * 96 + c] } }
        var y = [Float](repeating: -7, count: 3 * 70)
        p.stored.withUnsafeBytes { bytes in
            kernels.matmul(p.matrix(bytes), wide, xStride: 100, &y, yStride: 70, count: 3)
        }
        for t in 0..<3 {
            for r in 0..<67 { XCTAssertLessThanOrEqual(abs(Double(y[t * 70 + r]) - Double(p.reference[t * 67 + r])), p.tolerance(t * 67 + r)) }
            for r in 67..<70 { XCTAssertEqual(y[t * 70 + r], -7, "padding between output rows must stay untouched") }
        }
    }

    func testKernelSIMDForcedScalarPath() {
        let before = gt_kernel_isa_id()
        defer { gt_set_kernel_isa(before) }
        XCTAssertEqual(gt_set_kernel_isa(Int32(GT_ISA_SCALAR)), Int32(GT_ISA_SCALAR))
        XCTAssertEqual(String(cString: gt_kernel_isa()), "scalar")
        XCTAssertEqual(SIMDKernels(threads: 1).name, "scalar")
        XCTAssertEqual(SIMDKernels(threads: 2, isa: "scalar").name, "scalar x2 threads")
        // Automatic selection: the best supported path, unless GEMMA_TINY_KERNELS names another.
        var best = SIMDKernels.supportedISAs.first!
        if let forced = ProcessInfo.processInfo.environment["GEMMA_TINY_KERNELS"], SIMDKernels.supportedISAs.contains(forced) {
            best = forced
        }
        XCTAssertEqual(gt_set_kernel_isa(Int32(GT_ISA_AUTO)), gt_isa_from_name(best))
        XCTAssertEqual(SIMDKernels.supportedISAs.last, "scalar")
        // An unsupported path is refused and leaves the selection alone.
        if let missing = (0..<GT_ISA_COUNT).map({ Int32($0) }).first(where: { gt_isa_supported($0) == 0 }) {
            let now = gt_kernel_isa_id()
            XCTAssertEqual(gt_set_kernel_isa(missing), -1)
            XCTAssertEqual(gt_kernel_isa_id(), now)
            XCTAssertEqual(SIMDKernels(threads: 1, isa: Self.isaName(missing)).isa, now, "falls back to the detected path")
        }
        #if arch(x86_64)
        if gt_isa_supported(Int32(GT_ISA_AVX2)) != 0 && ProcessInfo.processInfo.environment["GEMMA_TINY_KERNELS"] == nil {
            let expected = gt_isa_supported(Int32(GT_ISA_AVX512_VNNI)) != 0 ? "avx512+vnni"
                : gt_isa_supported(Int32(GT_ISA_AVX2_VNNI)) != 0 ? "avx2+vnni" : "avx2"
            XCTAssertEqual(String(cString: gt_kernel_isa()), expected)
        }
        #endif
    }

    /// makeDefaultKernels returns the SIMD kernels, and GEMMA_TINY_KERNELS=reference the
    /// reference ones.
    func testKernelSIMDDefaultKernels() {
        let saved = ProcessInfo.processInfo.environment["GEMMA_TINY_KERNELS"]
        defer { if let saved { setenv("GEMMA_TINY_KERNELS", saved, 1) } else { unsetenv("GEMMA_TINY_KERNELS") } }
        unsetenv("GEMMA_TINY_KERNELS")
        let k = makeDefaultKernels(threads: 2)
        XCTAssertTrue(k is SIMDKernels)
        XCTAssertEqual(k.name, "\(String(cString: gt_kernel_isa())) x2 threads")
        setenv("GEMMA_TINY_KERNELS", "reference", 1)
        XCTAssertTrue(makeDefaultKernels(threads: 2) is ThreadedScalarKernels)
        XCTAssertTrue(makeDefaultKernels(threads: 1) is ScalarKernels)
    }
}

/// The K-quant kernels (GT_Q4K, GT_Q6K, by raw type id: ggml's Q4_K / Q6_K blocks) on every
/// ISA path this CPU supports. Every path must equal its scalar reference bit for bit
/// (`gt_matmul_reference`: matmul_kquant.c's arithmetic, or the row lanes of
/// matmul_kquant_rowlanes.c for the x86 paths); and every result must be within the input-rounding
/// bound (as for q4 / q8) of a double-precision dot product of the weights as gguf_dequant.c
/// decodes them, plus 1e-5 of the magnitude sum (Q4_K: |d sc q| and |dmin m| counted apart, as
/// the kernels sum those terms separately and they may cancel). Weights are random bytes with
/// random finite f16 scales: every such block is valid.
final class KernelKQuantTests: XCTestCase {
    struct KType {
        let id: Int32, ggml: Int32, blockBytes: Int, name: String
    }
    static let q4k = KType(id: Int32(GT_Q4K), ggml: Int32(GT_GGML_Q4_K), blockBytes: Int(GT_Q4K_BLOCK_BYTES), name: "q4k")
    static let q6k = KType(id: Int32(GT_Q6K), ggml: Int32(GT_GGML_Q6_K), blockBytes: Int(GT_Q6K_BLOCK_BYTES), name: "q6k")

    /// Random weights, inputs, prepared inputs and references for `rows` x `cols`.
    struct Problem {
        let type: KType, rows: Int, cols: Int, maxCount: Int, rowBytes: Int, actBytes: Int
        var w: [UInt8], x: [Float], act: [UInt8], reference: [Double], tolerance: [Double]
        /// The int8 inputs' rounding bound alone (tolerance = it * 1.0001 + f32 summation).
        var int8Bound: [Double]

        init(_ type: KType, rows: Int, cols: Int, maxCount: Int, rng: inout SplitMix) {
            let nsb = cols / 256
            let rowBytes = nsb * type.blockBytes, actBytes = gt_activation_bytes(type.id, cols)
            var w = (0..<(rows * rowBytes)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            var magnitude = [Float](repeating: 0, count: rows * cols)
            var wf = [Float](repeating: 0, count: rows * cols)
            for r in 0..<rows {
                for s in 0..<nsb {
                    let base = r * rowBytes + s * type.blockBytes
                    let d = gt_f32_to_f16(rng.normal(0.005)), dmin = gt_f32_to_f16(rng.normal(0.01))
                    let at = type.id == Int32(GT_Q4K) ? [(base, d), (base + 2, dmin)] : [(base + 208, d)]
                    for (offset, h) in at {
                        w[offset] = UInt8(h & 0xff)
                        w[offset + 1] = UInt8(h >> 8)
                    }
                }
                let ok = w.withUnsafeBytes { b in
                    wf.withUnsafeMutableBufferPointer {
                        gt_gguf_dequantize_row(type.ggml, b.baseAddress! + r * rowBytes, cols, $0.baseAddress! + r * cols)
                    }
                }
                XCTAssertEqual(ok, 0)
                for s in 0..<nsb {
                    var extra: Float = 0
                    if type.id == Int32(GT_Q4K) {
                        let o = r * rowBytes + s * type.blockBytes + 2
                        extra = 126 * abs(gt_f16_to_f32(UInt16(w[o]) | UInt16(w[o + 1]) << 8))
                    }
                    for c in (s * 256)..<(s * 256 + 256) { magnitude[r * cols + c] = abs(wf[r * cols + c]) + extra }
                }
            }
            let x = (0..<(maxCount * cols)).map { i in
                let scale = Float(1 + (i / 32) % 7)
                return i % 480 < 32 ? 0 : rng.normal(scale) * (rng.next() % 53 == 0 ? 20 : 1)
            }
            var act = [UInt8](repeating: 0, count: maxCount * actBytes)
            act.withUnsafeMutableBytes { gt_prepare_activations(type.id, x, cols, maxCount, cols, $0.baseAddress!) }
            var reference: [Double] = [], tolerance: [Double] = [], int8Bound: [Double] = []
            for t in 0..<maxCount {
                for r in 0..<rows {
                    var dot = 0.0, mag = 0.0, bound = 0.0
                    for b in 0..<(cols / 32) {
                        var amax = 0.0, wsum = 0.0
                        for i in (b * 32)..<(b * 32 + 32) {
                            let xv = Double(x[t * cols + i]), wv = Double(wf[r * cols + i])
                            dot += wv * xv
                            mag += Double(magnitude[r * cols + i]) * abs(xv)
                            amax = max(amax, abs(xv))
                            wsum += abs(wv)
                        }
                        bound += amax / 254 * wsum
                    }
                    reference.append(dot)
                    int8Bound.append(bound)
                    tolerance.append(bound * 1.0001 + 1e-5 * mag * 1.01 + 1e-30)
                }
            }
            self.type = type
            self.rows = rows
            self.cols = cols
            self.maxCount = maxCount
            self.rowBytes = rowBytes
            self.actBytes = actBytes
            self.w = w
            self.x = x
            self.act = act
            self.reference = reference
            self.tolerance = tolerance
            self.int8Bound = int8Bound
        }

        /// Rows [begin, end) of `count` tokens (starting at token `first`) on `isa`, or on the scalar
        /// arithmetic that `isa` reproduces (`reference`); the rest NaN.
        func run(isa: Int32, count: Int, first: Int = 0, begin: Int, end: Int, reference: Bool = false) -> [Float] {
            var y = [Float](repeating: .nan, count: count * rows)
            w.withUnsafeBytes { wb in
                act.withUnsafeBytes { ab in
                    let a = ab.baseAddress! + first * actBytes
                    if reference {
                        gt_matmul_reference(isa, type.id, wb.baseAddress!, rowBytes, cols, a, count, &y, rows, begin, end)
                    } else {
                        gt_matmul_isa(isa, type.id, wb.baseAddress!, rowBytes, cols, a, count, &y, rows, begin, end)
                    }
                }
            }
            return y
        }
    }

    func check(_ p: Problem, begin: Int, end: Int) {
        // Both scalar arithmetics against the double-precision reference, whatever this CPU runs.
        for (arithmetic, name) in [(Int32(GT_ISA_SCALAR), "scalar"), (Int32(GT_ISA_AVX512_VNNI), "row-lane scalar")] {
            let y = p.run(isa: arithmetic, count: p.maxCount, begin: begin, end: end, reference: true)
            var worst = 0.0
            for t in 0..<p.maxCount {
                for r in begin..<end {
                    let k = t * p.rows + r
                    worst = max(worst, abs(Double(y[k]) - p.reference[k]) / p.tolerance[k])
                }
            }
            XCTAssertLessThanOrEqual(worst, 1, "\(p.type.name) \(p.rows)x\(p.cols): \(name) vs the f64 reference (worst error / tolerance)")
        }
        for isa in KernelSIMDTests.isas {
            let name = "\(KernelSIMDTests.isaName(isa)) \(p.type.name) \(p.rows)x\(p.cols) rows [\(begin), \(end))"
            let scalar = p.run(isa: isa, count: p.maxCount, begin: begin, end: end, reference: true)
            for count in 1...p.maxCount {
                let y = p.run(isa: isa, count: count, begin: begin, end: end)
                var differ = 0, outside = 0
                for t in 0..<count {
                    for r in 0..<p.rows {
                        let k = t * p.rows + r
                        if r < begin || r >= end {
                            if !y[k].isNaN { outside += 1 }
                        } else if y[k].bitPattern != scalar[k].bitPattern {
                            differ += 1
                        }
                    }
                }
                XCTAssertEqual(differ, 0, "\(name) count \(count): differs from its scalar reference")
                XCTAssertEqual(outside, 0, "\(name) count \(count): wrote outside its rows")
            }
            // Token t alone equals token t of the batch.
            for t in [0, p.maxCount - 1] {
                let one = p.run(isa: isa, count: 1, first: t, begin: begin, end: end)
                XCTAssertEqual(one[begin..<end].map(\.bitPattern),
                               scalar[(t * p.rows + begin)..<(t * p.rows + end)].map(\.bitPattern), "\(name): token \(t) alone")
            }
            // Split rows equal one call.
            let mid = begin + (end - begin) / 2 + 1
            if mid < end {
                var a = p.run(isa: isa, count: p.maxCount, begin: begin, end: mid)
                let b = p.run(isa: isa, count: p.maxCount, begin: mid, end: end)
                for t in 0..<p.maxCount { for r in mid..<end { a[t * p.rows + r] = b[t * p.rows + r] } }
                for t in 0..<p.maxCount {
                    XCTAssertEqual(a[(t * p.rows + begin)..<(t * p.rows + end)].map(\.bitPattern),
                                   scalar[(t * p.rows + begin)..<(t * p.rows + end)].map(\.bitPattern), "\(name): split at \(mid)")
                }
            }
        }
    }

    func testKernelKQuantAllPathsBitIdenticalAndAccurate() {
        var rng = SplitMix(seed: 11)
        for type in [Self.q4k, Self.q6k] {
            XCTAssertEqual(gt_activation_bytes(type.id, 512), gt_activation_bytes(Int32(GT_Q8), 512), "the q8 input layout")
            XCTAssertEqual(gt_activation_bytes(type.id, 288), 0, "rows are whole super-blocks")
            for (rows, cols, begin, end, count) in [(1, 256, 0, 1, 9), (5, 512, 1, 5, 17), (9, 768, 0, 9, 9),
                                                    (17, 2048, 2, 17, 10), (6, 4096, 0, 6, 3)] {
                let p = Problem(type, rows: rows, cols: cols, maxCount: count, rng: &rng)
                check(p, begin: begin, end: end)
            }
        }
    }

    func testKernelKQuantNaNInputs() {
        var rng = SplitMix(seed: 12)
        for type in [Self.q4k, Self.q6k] {
            var p = Problem(type, rows: 5, cols: 256, maxCount: 2, rng: &rng)
            p.x[256 + 77] = .nan
            let x = p.x
            p.act.withUnsafeMutableBytes { gt_prepare_activations(type.id, x, 256, 2, 256, $0.baseAddress!) }
            for isa in KernelSIMDTests.isas {
                let y = p.run(isa: isa, count: 2, begin: 0, end: 5)
                XCTAssertTrue(y[5..<10].allSatisfy { $0.isNaN }, "\(KernelSIMDTests.isaName(isa)) \(type.name)")
                XCTAssertTrue(y[0..<5].allSatisfy { $0.isFinite }, "\(KernelSIMDTests.isaName(isa)) \(type.name)")
            }
        }
    }
}

/// The worker pool: many short jobs, jobs after the workers have gone to sleep, no threads
/// created per job.
final class KernelWorkerPoolTests: XCTestCase {
    static func threadCount() -> Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task"))?.count
    }

    func testKernelWorkerPoolRunsEveryPartOncePerJob() {
        let pool = WorkerPool(threads: 3)
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 3 * 16)
        defer { counts.deallocate() }
        counts.initialize(repeating: 0, count: 3 * 16)
        nonisolated(unsafe) let c = counts
        pool.run { c[$0 * 16] += 1 }
        // Threads of pools released by earlier tests may still be exiting: the count may drop,
        // it must not grow.
        let threadsBefore = Self.threadCount()
        for _ in 1..<5000 { pool.run { c[$0 * 16] += 1 } }
        XCTAssertEqual([counts[0], counts[16], counts[32]], [5000, 5000, 5000])
        if let before = threadsBefore, let after = Self.threadCount() {
            XCTAssertLessThanOrEqual(after, before, "no threads are created per job")
        }
        // Let the workers fall asleep, then wake them.
        Thread.sleep(forTimeInterval: Double(WorkerPool.spinTime) / 1e9 * 3 + 0.01)
        for _ in 0..<3 { pool.run { c[$0 * 16] += 1 } }
        XCTAssertEqual([counts[0], counts[16], counts[32]], [5003, 5003, 5003])
    }

    /// A pool with more threads than cores still makes progress (spinners yield, then sleep).
    func testKernelWorkerPoolOversubscribed() {
        let n = 4 * WorkerPool.defaultThreadCount + 1
        let pool = WorkerPool(threads: n)
        let counter = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        defer { counter.deallocate() }
        counter.initialize(to: 0)
        nonisolated(unsafe) let c = counter
        let start = Date()
        for _ in 0..<200 { pool.run { _ in _ = gt_atomic_fetch_add(c, 1) } }
        XCTAssertEqual(counter.pointee, 200 * n)
        XCTAssertLessThan(Date().timeIntervalSince(start), 30)
    }

    /// After spinTime an idle worker sleeps: it uses (almost) no CPU.
    func testKernelWorkerPoolIdleWorkersSleep() throws {
        guard Self.processCPUTime() != nil else { throw XCTSkip("no getrusage") }
        let pool = WorkerPool(threads: 3)
        pool.run { _ in }
        Thread.sleep(forTimeInterval: 0.05)
        let t0 = Self.processCPUTime()!
        Thread.sleep(forTimeInterval: 0.3)
        let used = Self.processCPUTime()! - t0
        XCTAssertLessThan(used, 0.1, "idle workers must sleep, not spin (\(used) s CPU in 0.3 s)")
        pool.run { _ in }
    }

    static func processCPUTime() -> Double? {
        var ts = timespec()
        guard clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0 else { return nil }
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// The SIMD kernels through the whole model, against transformers' logits, with the same bounds
/// as the reference kernels (`ParityTests.bounds`): f32 and bf16 files stay within 1e-3 relative
/// and reproduce the greedy continuations; q8 and q4 files, whose products also round their
/// inputs to int8, meet the q8 / q4 bounds (measured: q8 max rel err 1.4e-2, KL 1.3e-4, top-1
/// 100%; q4 1.3e-1, KL 1.6e-2, 100%; q5 8.1e-2, KL 3.9e-3, 100% -- the reference kernels: 9.8e-3 / 7.2e-5
/// and 1.3e-1 / 1.6e-2).
final class KernelSIMDParityTests: XCTestCase {
    static var bounds: [StorageType: ParityTests.Bounds] { ParityTests.bounds }

    func testKernelSIMDParityAllTypes() throws {
        let golden = try Golden.load("tiny-gemma")
        let kernels = SIMDKernels(threads: 2)
        kernels.minimumParallelWork = 0
        for type in [StorageType.f32, .bf16, .q8, .q4, .q5] {
            let model = try ModelFixtures.model("tiny-gemma", type)
            let cmp = try ParityTests.compare(golden, model, kernels: kernels)
            let bounds = Self.bounds[type]!
            print("PARITY tiny-gemma \(type) with \(kernels.name): \(cmp.summary)")
            if let limit = bounds.maxRelativeError {
                XCTAssertLessThanOrEqual(cmp.maxRelativeError, limit, "\(type): \(cmp.summary)")
            }
            XCTAssertGreaterThanOrEqual(cmp.agreement, bounds.minAgreement, "\(type): \(cmp.summary)")
            XCTAssertGreaterThanOrEqual(cmp.decisiveAgreement, bounds.minDecisiveAgreement, "\(type): \(cmp.summary)")
            XCTAssertLessThanOrEqual(cmp.meanKL, bounds.maxMeanKL, "\(type): \(cmp.summary)")
            if bounds.greedyMustMatch {
                let greedy = try ParityTests.greedyMatches(golden, model, kernels: kernels)
                XCTAssertEqual(greedy.matched, golden.prompts.count, greedy.firstMismatch ?? "")
            }
        }
    }
}
