import Foundation
import GemmaKernels

/// The one interface every matrix product of the model goes through. The scalar implementation
/// calls the C reference kernels; faster implementations (SIMD, other threading) conform to the
/// same protocol and are chosen when a session is created.
///
/// Contract: `y[r] = dot(row r of w, x)` for every row of `w`; `x` holds `w.cols` floats, `y`
/// holds `w.rows` floats; `x` and `y` do not overlap. Implementations allocate nothing per call.
public protocol MatmulKernels: Sendable {
    /// A short name for logs ("scalar", "scalar x4 threads").
    var name: String { get }

    /// y = W x.
    func matvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>)

    /// Y = X W^T for `count` input vectors: row i of X starts at `x + i * xStride` and row i of Y
    /// at `y + i * yStride`. Meant for prompt processing, where one pass over the weights can
    /// serve many tokens.
    func matmul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, xStride: Int,
                _ y: UnsafeMutablePointer<Float>, yStride: Int, count: Int)

    /// Products of several matrices with the same input, `count` rows of `x` (stride = the
    /// matrices' columns), each output with a stride of its matrix's rows. The results are those
    /// of separate `matvec` (count 1) / `matmul` calls; an implementation may prepare the input
    /// once and run all the products' rows in one dispatch of its threads.
    func matmul(_ products: SharedInputProducts, _ x: UnsafePointer<Float>, count: Int)

    /// How many parts `parallel` runs (its threads).
    var parallelism: Int { get }

    /// Runs `body(part)` for part in 0..<parallelism, possibly at the same time on several
    /// threads, and returns when all are done: for the forward pass's other work that splits
    /// well (a batch's attention).
    func parallel(_ body: (Int) -> Void)
}

extension MatmulKernels {
    public var parallelism: Int { 1 }
    public func parallel(_ body: (Int) -> Void) { body(0) }

    public func matmul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, xStride: Int,
                       _ y: UnsafeMutablePointer<Float>, yStride: Int, count: Int) {
        for i in 0..<count { matvec(w, x + i * xStride, y + i * yStride) }
    }
}

/// Single-threaded reference kernels (`gt_matvec_scalar`).
public struct ScalarKernels: MatmulKernels {
    public init() {}
    public var name: String { "scalar" }

    public func matvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        gt_matvec_scalar(Int32(w.type.rawValue), w.base, w.rowBytes, w.cols, x, y, 0, w.rows)
    }
}

/// The scalar kernels with the rows split across a persistent pool of threads. Each thread
/// writes a disjoint range of `y`, so results are bit-identical to `ScalarKernels` whatever the
/// thread count.
public final class ThreadedScalarKernels: MatmulKernels, @unchecked Sendable {
    public let pool: WorkerPool
    /// Below this many multiply-adds a product runs on the calling thread only: waking the
    /// workers costs more than it saves.
    public var minimumParallelWork = 1 << 16

    public init(threads: Int) {
        pool = WorkerPool(threads: threads)
    }

    public var name: String { pool.threadCount == 1 ? "scalar" : "scalar x\(pool.threadCount) threads" }
    public var parallelism: Int { pool.threadCount }
    public func parallel(_ body: (Int) -> Void) { pool.run(body) }

    public func matvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        let type = Int32(w.type.rawValue)
        let parts = pool.threadCount
        if parts == 1 || w.rows < 2 * parts || w.rows * w.cols < minimumParallelWork {
            gt_matvec_scalar(type, w.base, w.rowBytes, w.cols, x, y, 0, w.rows)
            return
        }
        // Chunks rounded to 16 rows keep each thread's output on its own cache lines.
        let rows = w.rows
        let chunk = ((rows + parts - 1) / parts + 15) & ~15
        let base = w.base, rowBytes = w.rowBytes, cols = w.cols
        nonisolated(unsafe) let xp = x
        nonisolated(unsafe) let yp = y
        nonisolated(unsafe) let bp = base
        pool.run { part in
            let begin = part * chunk
            let end = min(rows, begin + chunk)
            if begin < end { gt_matvec_scalar(type, bp, rowBytes, cols, xp, yp, begin, end) }
        }
    }
}

/// The fused dequantize-dot kernels of the C library on the best ISA path of this CPU (on x86-64
/// AVX-512 VNNI, AVX2 with AVX-VNNI, or AVX2; on AArch64 NEON with or without SDOT; portable C
/// otherwise), rows split across a persistent `WorkerPool`.
///
/// Each product prepares its input once, on the calling thread, into a scratch buffer owned by
/// this object (f32 copies for f32/bf16 weights; int8 blocks of 32 with an f32 scale each for
/// quantized weights, q8 / q4 / q5 / q4k / q6k, so their products are integer multiply-adds),
/// then hands rows out to the threads in chunks. A batch of tokens (`matmul`) reads every weight row once for the whole
/// batch. Results do not depend on the thread count or on how the tokens are batched: every
/// row is computed by one thread with the same sequence of operations.
///
/// Accuracy: exact f32 inputs for f32/bf16 weights (only the summation order differs from
/// `ScalarKernels`); for quantized weights, the int8 rounding of the inputs adds an error of at
/// most (max |x| in a block / 254) * (sum |w| in the block) per block, as llama.cpp's Q8_0
/// inputs do. With `preciseInputs`, quantized products also prepare that rounding error as a
/// second int8 vector and add its product: inputs of about 15 bits (the error shrinks about 250
/// times), for twice the multiply-adds and no more weight reads (see `init`).
///
/// The scratch buffer grows to the largest product seen (it is allocated on the first products,
/// not on every one); a lock serialises products made from several threads. On the x86 paths
/// the K-quant kernels also keep, per thread, a copy of a batch's inputs (grown the same way,
/// freed when the thread ends): on avx512+vnni rearranged in groups of 16 tokens (1.4 MiB per
/// thread for the 2B's widest product at the default batch of 64), on avx2 and avx2+vnni a
/// column slice's inputs for up to 64 tokens and their per-block terms (Q4_K's minimum factors
/// or Q6_K's per-sub-block starts; about 190 KiB).
public final class SIMDKernels: MatmulKernels, @unchecked Sendable {
    public let pool: WorkerPool
    /// The C kernels' ISA path (`GT_ISA_*`).
    public let isa: Int32
    /// Its name: "avx512+vnni", "avx2+vnni", "avx2", "neon+dotprod", "neon" or "scalar".
    public let isaName: String
    /// Below this many multiply-adds a product runs on the calling thread only: waking the
    /// workers costs more than it saves.
    public var minimumParallelWork = 1 << 16
    /// Whether quantized products take their inputs in two int8 parts (see `init`).
    public let preciseInputs: Bool

    private let lock = NSLock()
    /// The prepared inputs (with `preciseInputs`, their rounding errors' after them).
    private var scratch = GrowableBuffer()
    /// With `preciseInputs`: the inputs' rounding errors (f32), and their products' outputs.
    private var residuals = GrowableBuffer()
    private var errorOutputs = GrowableBuffer()
    /// Next row to hand out, on its own cache line.
    private let nextRow: UnsafeMutableRawPointer
    /// The row chunks of a dispatch (at most 8 per thread and product, + 1).
    private struct SharedItem { var product, begin, end: Int }
    private let sharedItems: UnsafeMutablePointer<SharedItem>

    /// - Parameters:
    ///   - threads: threads per product including the caller (0 = one per core).
    ///   - isa: a path name to use instead of the detected one ("scalar" forces the portable C
    ///     path); nil or an unsupported name = the C library's choice (`gt_kernel_isa`, which
    ///     honours `GEMMA_TINY_KERNELS`).
    ///   - preciseInputs: quantized products run on the int8 inputs and again on their rounding
    ///     error (x - d q, also int8 with a scale per 32), and add the two outputs. The products'
    ///     input error falls from about max|x| / 254 per block to about max|x| / 64500, as if the
    ///     weights met f32 inputs; each product does twice the multiply-adds (a prompt runs at
    ///     about half speed, generation at about 0.6x) and reads its weights from memory once.
    ///     For quality measurements (`gemma-tiny perplexity --precise-inputs`); off by default:
    ///     llama.cpp's inputs are int8 as well.
    public init(threads: Int = 0, isa: String? = nil, preciseInputs: Bool = false) {
        self.preciseInputs = preciseInputs
        pool = WorkerPool(threads: threads > 0 ? threads : WorkerPool.defaultThreadCount)
        var id = gt_kernel_isa_id()
        if let isa {
            let wanted = gt_isa_from_name(isa)
            if wanted >= 0 && gt_isa_supported(wanted) != 0 { id = wanted }
        }
        self.isa = id
        isaName = String(cString: gt_isa_name(id))
        nextRow = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
        nextRow.initializeMemory(as: Int.self, repeating: 0, count: 1)
        let itemCapacity = SharedInputProducts.capacity * (8 * pool.threadCount + 1)
        sharedItems = .allocate(capacity: itemCapacity)
        sharedItems.initialize(repeating: SharedItem(product: 0, begin: 0, end: 0), count: itemCapacity)
    }

    deinit {
        residuals.free()
        errorOutputs.free()
        scratch.free()
        nextRow.deallocate()
        sharedItems.deallocate()
    }

    /// The ISA paths this CPU supports, best first ("scalar" last).
    public static var supportedISAs: [String] {
        [GT_ISA_AVX512_VNNI, GT_ISA_AVX2_VNNI, GT_ISA_AVX2, GT_ISA_NEON_DOTPROD, GT_ISA_NEON, GT_ISA_SCALAR]
            .filter { gt_isa_supported(Int32($0)) != 0 }
            .map { String(cString: gt_isa_name(Int32($0))) }
    }

    public var name: String {
        (pool.threadCount == 1 ? isaName : "\(isaName) x\(pool.threadCount) threads") + (preciseInputs ? ", precise inputs" : "")
    }
    public var parallelism: Int { pool.threadCount }

    public func parallel(_ body: (Int) -> Void) {
        lock.lock()
        defer { lock.unlock() }
        pool.run(body)
    }

    public func matvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        matmul(w, x, xStride: w.cols, y, yStride: w.rows, count: 1)
    }

    public func matmul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, xStride: Int,
                       _ y: UnsafeMutablePointer<Float>, yStride: Int, count: Int) {
        guard count > 0, w.rows > 0 else { return }
        precondition(gt_activation_bytes(Int32(w.type.rawValue), w.cols) > 0,
                     "\(w.name): no kernel for \(w.type) rows of \(w.cols) values")
        run(SharedInputProducts((w, y)), x, xStride: xStride, yStride: yStride, count: count)
    }

    /// Products with one input: prepared once when they all take the same prepared bytes (int8
    /// blocks for any quantized type, the same f32 copy for one float type), then all their rows
    /// handed out from one counter in a single dispatch of the threads (one wake-up instead of
    /// two or three). Each row is computed as `matmul` computes it, so the results are the same.
    public func matmul(_ products: SharedInputProducts, _ x: UnsafePointer<Float>, count: Int) {
        guard count > 0 else { return }
        let first = products[0].weights.type, cols = products.cols
        let actBytes = gt_activation_bytes(Int32(first.rawValue), cols)
        var shareable = actBytes > 0
        for i in 1..<products.count {
            let other = products[i].weights.type
            shareable = shareable && gt_activation_bytes(Int32(other.rawValue), cols) == actBytes
                && (other == first || (other.isQuantized && first.isQuantized))
        }
        guard shareable else {
            for i in 0..<products.count {
                let (w, y) = products[i]
                matmul(w, x, xStride: cols, y, yStride: w.rows, count: count)
            }
            return
        }
        run(products, x, xStride: cols, yStride: nil, count: count)
    }

    /// Prepares the input once (as the first product's type wants it; the caller checked that
    /// the others take the same bytes), then runs every product's rows: on this thread for small
    /// work, otherwise in chunks handed out from one counter to the pool's threads. Output i's
    /// row stride is `yStride`, or its matrix's rows when nil.
    private func run(_ products: SharedInputProducts, _ x: UnsafePointer<Float>, xStride: Int, yStride: Int?,
                     count: Int) {
        let n = products.count, cols = products.cols
        let type = Int32(products[0].weights.type.rawValue)
        lock.lock()
        defer { lock.unlock() }
        let precise = preciseInputs && products[0].weights.type.isQuantized
        let actBytes = gt_activation_bytes(type, cols)
        // With precise inputs, vectors count..<2 count of the scratch are the inputs' rounding errors.
        let prepared = scratch.reserve(bytes: actBytes * (precise ? 2 * count : count))
        let parts = pool.threadCount, isa = self.isa
        var rows = 0
        for i in 0..<n { rows += products[i].weights.rows }
        let work = rows * cols * count * (precise ? 2 : 1)
        let parallelPrepare = parts > 1 && count >= 2 * parts && work >= minimumParallelWork
        prepareInputs(type: type, x, cols: cols, xStride: xStride, count: count, into: prepared, parallel: parallelPrepare)
        nonisolated(unsafe) let act = UnsafeRawPointer(prepared)
        let errors = precise ? prepareErrors(type: type, x, cols: cols, xStride: xStride, count: count, prepared: prepared,
                                             outputs: rows * count, parallel: parallelPrepare) : nil
        nonisolated(unsafe) let errorAct = act + count * actBytes
        // Precise inputs: product i's outputs for the rounding errors, `count` rows of its
        // matrix's rows after those of the products before it, added to its outputs at the end.
        func errorOutput(_ i: Int) -> UnsafeMutablePointer<Float>? {
            guard let errors else { return nil }
            var before = 0
            for j in 0..<i { before += products[j].weights.rows }
            return errors + before * count
        }
        defer {
            for i in 0..<n {
                guard let e = errorOutput(i) else { break }
                let (w, y) = products[i]
                addErrors(e, rows: w.rows, count: count, into: y, yStride: yStride ?? w.rows)
            }
        }
        if parts == 1 || rows < 32 || work < minimumParallelWork {
            for i in 0..<n {
                let (w, y) = products[i]
                Self.product(isa, w, act, count, y, yStride ?? w.rows, errorAct, errorOutput(i), 0, w.rows)
            }
            return
        }
        // Rows are handed out in chunks from a shared counter, about 8 per thread and product, so
        // a thread that gets less CPU (a busy machine) takes fewer. Chunks are multiples of 16
        // rows, keeping each thread's outputs on separate cache lines.
        var itemCount = 0
        for i in 0..<n {
            let rows = products[i].weights.rows
            let chunk = max(16, ((rows + 8 * parts - 1) / (8 * parts) + 15) & ~15)
            for begin in stride(from: 0, to: rows, by: chunk) {
                sharedItems[itemCount] = SharedItem(product: i, begin: begin, end: min(rows, begin + chunk))
                itemCount += 1
            }
        }
        let counter = nextRow.assumingMemoryBound(to: Int.self)
        gt_atomic_store(counter, 0)
        nonisolated(unsafe) let next = counter
        nonisolated(unsafe) let items = sharedItems
        nonisolated(unsafe) let all = products
        nonisolated(unsafe) let errorYs = (errorOutput(0), n > 1 ? errorOutput(1) : nil, n > 2 ? errorOutput(2) : nil)
        let total = itemCount
        pool.run { _ in
            while true {
                let k = gt_atomic_fetch_add(next, 1)
                if k >= total { break }
                let item = items[k]
                let (w, y) = all[item.product]
                let errorY = item.product == 0 ? errorYs.0 : item.product == 1 ? errorYs.1 : errorYs.2
                Self.product(isa, w, act, count, y, yStride ?? w.rows, errorAct, errorY, item.begin, item.end)
            }
        }
    }

    /// Rows [begin, end) of one product for `count` tokens; with precise inputs (`errorY`: where
    /// the outputs of the rounding errors prepared at `errorAct` go, a stride of the matrix's
    /// rows) the same rows again for the errors, while they are in cache.
    private static func product(_ isa: Int32, _ w: WeightMatrix, _ act: UnsafeRawPointer, _ count: Int,
                                _ y: UnsafeMutablePointer<Float>, _ ys: Int, _ errorAct: UnsafeRawPointer,
                                _ errorY: UnsafeMutablePointer<Float>?, _ begin: Int, _ end: Int) {
        let type = Int32(w.type.rawValue)
        gt_matmul_isa(isa, type, w.base, w.rowBytes, w.cols, act, count, y, ys, begin, end)
        if let errorY {
            gt_matmul_isa(isa, type, w.base, w.rowBytes, w.cols, errorAct, count, errorY, w.rows, begin, end)
        }
    }

    /// y[t] += the output of token t's rounding error, row by row.
    private func addErrors(_ errors: UnsafeMutablePointer<Float>, rows: Int, count: Int,
                           into y: UnsafeMutablePointer<Float>, yStride: Int) {
        for t in 0..<count {
            let e = errors + t * rows, out = y + t * yStride
            for r in 0..<rows { out[r] += e[r] }
        }
    }

    /// Precise inputs: the rounding errors of the `count` inputs just prepared at `prepared`,
    /// prepared after them, and room for `outputs` floats of their products' outputs (returned).
    private func prepareErrors(type: Int32, _ x: UnsafePointer<Float>, cols: Int, xStride: Int, count: Int,
                               prepared: UnsafeMutableRawPointer, outputs: Int, parallel: Bool) -> UnsafeMutablePointer<Float> {
        let r = residuals.reserve(floats: count * cols)
        gt_activation_residuals(type, x, cols, 0, count, xStride, prepared, r, cols)
        prepareInputs(type: type, r, cols: cols, xStride: cols, count: count,
                      into: prepared + count * gt_activation_bytes(type, cols), parallel: parallel)
        return errorOutputs.reserve(floats: outputs)
    }

    /// The int8 (or f32) inputs of a product into `out`. A batch's tokens are split between
    /// the threads (one more dispatch of the pool, cheaper than one thread preparing 64 tokens
    /// while the others wait); every split writes the same bytes.
    private func prepareInputs(type: Int32, _ x: UnsafePointer<Float>, cols: Int, xStride: Int, count: Int,
                                into out: UnsafeMutableRawPointer, parallel: Bool) {
        guard parallel else {
            gt_prepare_activations_isa(isa, type, x, cols, 0, count, xStride, out)
            return
        }
        let parts = pool.threadCount, isa = self.isa
        nonisolated(unsafe) let xp = x
        nonisolated(unsafe) let out = out
        pool.run { part in
            gt_prepare_activations_isa(isa, type, xp, cols, count * part / parts, count * (part + 1) / parts, xStride, out)
        }
    }
}

/// The kernels a session uses by default for `threads` threads (0 = one per core): the SIMD
/// kernels on the best path of this CPU. `GEMMA_TINY_KERNELS` overrides the choice: a path name
/// ("scalar", "avx2", "avx2+vnni", "avx512+vnni", "neon", "neon+dotprod") forces that path of
/// `SIMDKernels` (where the CPU has it), and
/// "reference" selects the f32-input reference kernels (`ScalarKernels` / `ThreadedScalarKernels`).
/// `preciseInputs` is `SIMDKernels`' (the reference kernels' inputs are f32 anyway).
public func makeDefaultKernels(threads: Int = 0, preciseInputs: Bool = false) -> any MatmulKernels {
    let n = threads > 0 ? threads : WorkerPool.defaultThreadCount
    if ProcessInfo.processInfo.environment["GEMMA_TINY_KERNELS"] == "reference" {
        return n == 1 ? ScalarKernels() : ThreadedScalarKernels(threads: n)
    }
    return SIMDKernels(threads: n, preciseInputs: preciseInputs)
}

/// A 64-byte aligned buffer that only grows: scratch space reused from call to call, so that a
/// product allocates only when it is larger than every one before (at least 64 KiB, then at
/// least doubling).
struct GrowableBuffer {
    private var base: UnsafeMutableRawPointer? = nil
    private var capacity = 0

    /// At least `bytes` bytes, contents undefined.
    mutating func reserve(bytes: Int) -> UnsafeMutableRawPointer {
        if let base, bytes <= capacity { return base }
        base?.deallocate()
        capacity = max(bytes, 2 * capacity, 1 << 16)
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
        base = fresh
        return fresh
    }

    /// At least `floats` floats, contents undefined.
    mutating func reserve(floats: Int) -> UnsafeMutablePointer<Float> {
        let bytes = floats * MemoryLayout<Float>.stride
        return reserve(bytes: bytes).bindMemory(to: Float.self, capacity: bytes / MemoryLayout<Float>.stride)
    }

    func free() { base?.deallocate() }
}
