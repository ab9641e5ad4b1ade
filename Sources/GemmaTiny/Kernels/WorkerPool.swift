import Foundation
import GemmaKernels

/// A fixed set of threads that run one job at a time, split into `threadCount` parts: part 0 on
/// the calling thread, parts 1... on the pool's threads. Threads are started once; a job costs
/// no allocation and no thread creation.
///
/// Decoding runs a few hundred short products per token, microseconds apart, so waking threads
/// through the kernel each time would cost a noticeable share of the token. Between jobs a
/// worker therefore first spins on the job counter for `spinTime` (with the CPU's pause hint,
/// yielding the core after the first stretch in case other threads need it), and only then
/// sleeps on a condition variable; the caller likewise spins, then sleeps, while it waits for the
/// workers to finish. An idle pool thus costs nothing after `spinTime`. That hand-off is C
/// (GemmaKernels' pool_sync.c), where kernels-test checks it under qemu as well.
///
/// `run` may be called from several threads; jobs are then serialised. A job must not call
/// `run` on the same pool (it would wait for itself).
public final class WorkerPool: @unchecked Sendable {
    public let threadCount: Int
    private let state: State

    /// The most threads a pool accepts: far more than any board this runs on has cores (more
    /// threads than cores only slows matrix products down), and few enough that a mistyped
    /// count cannot create thousands of threads.
    public static let maximumThreadCount = 256

    public static var defaultThreadCount: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// How long an idle worker, or the caller waiting for the workers, spins before sleeping.
    public static let spinTime: UInt64 = 200_000  // ns

    /// - Parameter threads: total parts per job including the caller (at least 1).
    public init(threads: Int) {
        threadCount = min(max(1, threads), Self.maximumThreadCount)  // the CLIs reject counts outside 1...max
        state = State()
        for part in 1..<max(threadCount, 1) {
            let state = self.state
            let thread = Thread { state.work(part: part) }
            thread.name = "gemma-tiny worker \(part)"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    deinit { state.shutDown() }

    /// Runs `body(part)` for part in 0..<threadCount, in parallel, and returns when all are done.
    public func run(_ body: (Int) -> Void) {
        if threadCount == 1 {
            body(0)
            return
        }
        withoutActuallyEscaping(body) { job in
            state.runLock.lock()
            defer { state.runLock.unlock() }
            state.start(job, workers: threadCount - 1)
            job(0)
            state.waitForWorkers()
        }
    }

    /// The job, and the C hand-off that starts it and reports it done (pool_sync.c).
    private final class State: @unchecked Sendable {
        let runLock = NSLock()
        private let sync: OpaquePointer
        /// Written before `gt_pool_sync_start`, read by workers after `gt_pool_sync_next_job`.
        private var job: ((Int) -> Void)?

        init() {
            guard let sync = gt_pool_sync_create() else { fatalError("out of memory creating the worker pool") }
            self.sync = sync
        }

        deinit { gt_pool_sync_destroy(sync) }

        func start(_ job: @escaping (Int) -> Void, workers: Int) {
            self.job = job
            gt_pool_sync_start(sync, workers)
        }

        func waitForWorkers() {
            gt_pool_sync_wait_workers(sync, WorkerPool.spinTime)
            job = nil
        }

        func work(part: Int) {
            var seen = 0
            while true {
                seen = gt_pool_sync_next_job(sync, seen, WorkerPool.spinTime)
                if seen == 0 { break }  // shut down
                // Drop our reference to the job before reporting it done: the caller's closure
                // must not outlive its `run` call (withoutActuallyEscaping checks).
                var job = self.job
                job!(part)
                job = nil
                gt_pool_sync_job_done(sync)
            }
        }

        func shutDown() { gt_pool_sync_shut_down(sync) }
    }
}
