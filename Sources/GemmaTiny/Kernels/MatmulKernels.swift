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
}

extension MatmulKernels {
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

/// The kernels a session uses by default for `threads` threads (0 = one per core).
public func makeDefaultKernels(threads: Int = 0) -> any MatmulKernels {
    let n = threads > 0 ? threads : WorkerPool.defaultThreadCount
    return n == 1 ? ScalarKernels() : ThreadedScalarKernels(threads: n)
}
