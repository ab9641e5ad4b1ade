import Foundation

/// A fixed set of threads that run one job at a time, split into `threadCount` parts: part 0 on
/// the calling thread, parts 1... on the pool's threads. Threads are started once and sleep on a
/// condition variable between jobs, so a job costs no allocation and no thread creation.
///
/// `run` may be called from several threads; jobs are then serialised. A job must not call
/// `run` on the same pool (it would wait for itself).
public final class WorkerPool: @unchecked Sendable {
    public let threadCount: Int
    private let state: State

    public static var defaultThreadCount: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// - Parameter threads: total parts per job including the caller (at least 1).
    public init(threads: Int) {
        threadCount = max(1, threads)
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

    private final class State: @unchecked Sendable {
        let runLock = NSLock()
        private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        private let workReady = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        private let workDone = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        private var generation: UInt64 = 0
        private var pending = 0
        private var job: ((Int) -> Void)?
        private var stopping = false
        private var liveThreads = 0

        init() {
            pthread_mutex_init(mutex, nil)
            pthread_cond_init(workReady, nil)
            pthread_cond_init(workDone, nil)
        }

        deinit {
            pthread_cond_destroy(workDone)
            pthread_cond_destroy(workReady)
            pthread_mutex_destroy(mutex)
            mutex.deallocate()
            workReady.deallocate()
            workDone.deallocate()
        }

        func start(_ job: @escaping (Int) -> Void, workers: Int) {
            pthread_mutex_lock(mutex)
            self.job = job
            pending = workers
            generation &+= 1
            pthread_cond_broadcast(workReady)
            pthread_mutex_unlock(mutex)
        }

        func waitForWorkers() {
            pthread_mutex_lock(mutex)
            while pending > 0 { pthread_cond_wait(workDone, mutex) }
            job = nil
            pthread_mutex_unlock(mutex)
        }

        func work(part: Int) {
            pthread_mutex_lock(mutex)
            liveThreads += 1
            // Jobs are numbered from 1, so a thread that starts late still sees the first one.
            var seen: UInt64 = 0
            while true {
                while generation == seen && !stopping { pthread_cond_wait(workReady, mutex) }
                if stopping { break }
                seen = generation
                let job = self.job!
                pthread_mutex_unlock(mutex)
                job(part)
                pthread_mutex_lock(mutex)
                pending -= 1
                if pending == 0 { pthread_cond_signal(workDone) }
            }
            liveThreads -= 1
            pthread_mutex_unlock(mutex)
        }

        func shutDown() {
            pthread_mutex_lock(mutex)
            stopping = true
            pthread_cond_broadcast(workReady)
            pthread_mutex_unlock(mutex)
        }
    }
}
