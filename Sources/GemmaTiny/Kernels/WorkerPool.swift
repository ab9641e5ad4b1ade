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
/// workers to finish. An idle pool thus costs nothing after `spinTime`.
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

    /// Monotonic nanoseconds.
    @inline(__always)
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Spins until `done()` or `spinTime` has passed; true if `done()` became true.
    @inline(__always)
    static func spin(until done: () -> Bool) -> Bool {
        if done() { return true }
        let start = now()
        var yielding = false
        while true {
            for _ in 0..<64 {
                if done() { return true }
                gt_cpu_relax()
            }
            let elapsed = now() &- start
            if elapsed > spinTime { return false }
            // After the first stretch, let other runnable threads (perhaps the very worker we
            // wait for, on an oversubscribed machine) have the core between checks.
            if yielding { sched_yield() } else if elapsed > spinTime / 8 { yielding = true }
        }
    }

    /// Shared state. The counters are C atomics, each on its own cache line.
    private final class State: @unchecked Sendable {
        let runLock = NSLock()
        private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        private let workReady = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        private let workDone = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        private let counters: UnsafeMutableRawPointer
        private var generation: UnsafeMutablePointer<Int> { counter(0) }   // jobs started
        private var pending: UnsafeMutablePointer<Int> { counter(1) }      // workers still on the job
        private var sleepers: UnsafeMutablePointer<Int> { counter(2) }     // workers asleep on workReady
        private var waiterAsleep: UnsafeMutablePointer<Int> { counter(3) } // caller asleep on workDone
        private var stopping: UnsafeMutablePointer<Int> { counter(4) }
        /// Written before `generation` is bumped, read by workers after they see the bump.
        private var job: ((Int) -> Void)?

        @inline(__always)
        private func counter(_ i: Int) -> UnsafeMutablePointer<Int> {
            (counters + i * 64).assumingMemoryBound(to: Int.self)
        }

        init() {
            pthread_mutex_init(mutex, nil)
            pthread_cond_init(workReady, nil)
            pthread_cond_init(workDone, nil)
            counters = UnsafeMutableRawPointer.allocate(byteCount: 5 * 64, alignment: 64)
            counters.initializeMemory(as: UInt8.self, repeating: 0, count: 5 * 64)
        }

        deinit {
            pthread_cond_destroy(workDone)
            pthread_cond_destroy(workReady)
            pthread_mutex_destroy(mutex)
            mutex.deallocate()
            workReady.deallocate()
            workDone.deallocate()
            counters.deallocate()
        }

        func start(_ job: @escaping (Int) -> Void, workers: Int) {
            self.job = job
            gt_atomic_store(pending, workers)
            _ = gt_atomic_fetch_add(generation, 1)
            // A worker that decided to sleep registered in `sleepers` before re-checking
            // `generation` under the mutex, so either it sees the bump or we see it here.
            if gt_atomic_load(sleepers) > 0 {
                pthread_mutex_lock(mutex)
                pthread_cond_broadcast(workReady)
                pthread_mutex_unlock(mutex)
            }
        }

        func waitForWorkers() {
            let pending = self.pending
            if !WorkerPool.spin(until: { gt_atomic_load(pending) == 0 }) {
                pthread_mutex_lock(mutex)
                gt_atomic_store(waiterAsleep, 1)
                while gt_atomic_load(pending) > 0 { pthread_cond_wait(workDone, mutex) }
                gt_atomic_store(waiterAsleep, 0)
                pthread_mutex_unlock(mutex)
            }
            job = nil
        }

        func work(part: Int) {
            // Jobs are numbered from 1, so a thread that starts late still sees the first one.
            var seen = 0
            let generation = self.generation, stopping = self.stopping
            while true {
                if !WorkerPool.spin(until: { gt_atomic_load(generation) != seen || gt_atomic_load(stopping) != 0 }) {
                    pthread_mutex_lock(mutex)
                    _ = gt_atomic_fetch_add(sleepers, 1)
                    while gt_atomic_load(generation) == seen && gt_atomic_load(stopping) == 0 {
                        pthread_cond_wait(workReady, mutex)
                    }
                    _ = gt_atomic_fetch_sub(sleepers, 1)
                    pthread_mutex_unlock(mutex)
                }
                if gt_atomic_load(stopping) != 0 { break }
                seen = gt_atomic_load(generation)
                // Drop our reference to the job before reporting it done: the caller's closure
                // must not outlive its `run` call (withoutActuallyEscaping checks).
                var job = self.job
                job!(part)
                job = nil
                if gt_atomic_fetch_sub(pending, 1) == 1 && gt_atomic_load(waiterAsleep) != 0 {
                    pthread_mutex_lock(mutex)
                    pthread_cond_signal(workDone)
                    pthread_mutex_unlock(mutex)
                }
            }
        }

        func shutDown() {
            gt_atomic_store(stopping, 1)
            pthread_mutex_lock(mutex)
            pthread_cond_broadcast(workReady)
            pthread_mutex_unlock(mutex)
        }
    }
}
