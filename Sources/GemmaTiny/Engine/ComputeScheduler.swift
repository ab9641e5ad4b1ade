import Foundation
import Synchronization

/// The per-conversation state the compute thread works on: a KV cache and the tokens in it
/// (`inference.tokens`).
///
/// Only the compute thread touches `inference` once the state exists (it is handed over through
/// the scheduler's lock, which orders the accesses).
final class SessionState: @unchecked Sendable {
    let inference: InferenceSession

    init(inference: InferenceSession) {
        self.inference = inference
    }

    /// Empties the KV cache (compute thread).
    func reset() {
        inference.reset()
    }
}

/// Why a job is stopped before it finishes by itself.
enum CancelReason: Int, Sendable {
    /// Its stream's consumer went away (task cancelled, stream dropped).
    case consumerGone = 1
    /// `GemmaSession.cancel()`: end with a `.cancelled` summary.
    case requested = 2
    /// The engine is shutting down: end with `EngineError.shutDown`.
    case shutDown = 3
}

/// How a job ended, for the engine's counters.
enum JobOutcome: Sendable {
    case completed, cancelled, failed
}

/// What one step did, for the engine's counters.
struct StepReport {
    var promptTokensRun = 0
    var cachedPromptTokens = 0
    var tokensGenerated = 0
    /// Set when the job is finished (its stream is already ended).
    var outcome: JobOutcome?
}

/// A unit of work for the compute thread, run in steps so that several can be interleaved.
///
/// Thread rules: `id`, `session` and the cancel flag may be read anywhere; everything a
/// subclass keeps for its steps is touched only by the compute thread (`step`, `abandon`), or
/// by the submitting thread before the job is handed to the scheduler.
class ComputeJob: @unchecked Sendable {
    let session: SessionState
    /// Set by the scheduler when the job is submitted (under its lock).
    var id: UInt64 = 0
    /// Whether `step` ran at least once (compute thread).
    var hasStarted = false
    private let cancelState = Atomic<Int>(0)
    /// What ends the job's stream (or resumes its caller). Set by `step` / `abandon` when the
    /// job finishes; the scheduler runs it after it has counted the job and removed it from the
    /// queue, so whoever sees the end also sees the session free and the counters updated.
    var finalDelivery: (@Sendable () -> Void)?
    /// Tokens sampled so far (written by the compute thread, read by `requestCancel`).
    let generatedCount = Atomic<Int>(0)
    /// `generatedCount` when cancellation was first requested (-1: never).
    let generatedAtCancel = Atomic<Int>(-1)

    init(session: SessionState) {
        self.session = session
    }

    var cancelReason: CancelReason? { CancelReason(rawValue: cancelState.load(ordering: .acquiring)) }

    /// The first reason wins. Returns whether this call set it.
    @discardableResult
    func requestCancel(_ reason: CancelReason) -> Bool {
        let (exchanged, _) = cancelState.compareExchange(expected: 0, desired: reason.rawValue, ordering: .acquiringAndReleasing)
        if exchanged { generatedAtCancel.store(generatedCount.load(ordering: .relaxed), ordering: .relaxed) }
        return exchanged
    }

    /// Runs one step on the compute thread.
    func step(_ scheduler: ComputeScheduler) -> StepReport { StepReport(outcome: .completed) }

    /// Ends the job without further steps, because of `reason` (compute thread, or the
    /// submitting thread for a job the compute thread never saw).
    func abandon(_ reason: CancelReason) -> StepReport { StepReport(outcome: .cancelled) }

    /// Whether `session.cancel()` / `engine.cancelAll()` stop it: generations do; a session
    /// task (reset, the cache count: one quick step whose caller relies on it) does not.
    var stopsOnRequest: Bool { true }
}

/// A job of one step that runs a closure on the session (reset).
final class SessionTaskJob: ComputeJob, @unchecked Sendable {
    private let body: @Sendable (SessionState) -> Void
    private let done: @Sendable (Bool) -> Void

    init(session: SessionState, body: @escaping @Sendable (SessionState) -> Void, done: @escaping @Sendable (Bool) -> Void) {
        self.body = body
        self.done = done
        super.init(session: session)
    }

    override func step(_ scheduler: ComputeScheduler) -> StepReport {
        body(session)
        let done = self.done
        finalDelivery = { done(true) }
        return StepReport(outcome: .completed)
    }

    override func abandon(_ reason: CancelReason) -> StepReport {
        let done = self.done
        finalDelivery = { done(false) }
        return StepReport(outcome: .cancelled)
    }

    override var stopsOnRequest: Bool { false }
}

/// Runs every model step of an engine on one dedicated thread, interleaving the active jobs
/// round-robin, one step (one generated token, or one chunk of prompt) at a time.
///
/// - One thread: the matmul kernels' worker pool is never entered by two steps at once, and a
///   session's KV cache is only ever touched by this thread.
/// - Jobs are kept in submission order. A job is *eligible* when no earlier job belongs to the
///   same session (each session's requests run one after another, in order); the first
///   `maxActive` eligible jobs are *running*, and later ones wait their turn (FIFO).
/// - Running jobs take turns: after job N steps, the next running job with a larger id steps,
///   wrapping around.
/// - A cancelled job is ended at its next turn (at once if it never started), so its session is
///   free within one step.
final class ComputeScheduler: @unchecked Sendable {
    let maxActive: Int
    /// Test hook: sleep this long after every step (makes timing-dependent tests deterministic).
    let stepDelay: Duration

    private let condition = NSCondition()
    // Guarded by `condition`:
    private var jobs: [ComputeJob] = []
    private var nextId: UInt64 = 1
    private var lastRunId: UInt64 = 0
    private var stopping = false
    private var exited = false
    private var exitWaiters: [CheckedContinuation<Void, Never>] = []
    private var counters = EngineStats()
    private var cancellationLog: [(id: UInt64, atRequest: Int, atEnd: Int)] = []
    private var stepTrace: [UInt64]?

    init(maxActive: Int, stepDelay: Duration = .zero) {
        self.maxActive = max(1, maxActive)
        self.stepDelay = stepDelay
    }

    /// Starts the compute thread. Called once.
    func start(name: String) {
        let thread = Thread { [self] in
            // The kernel's thread name (what top -H and gdb show; 15 bytes at most).
            if let comm = FileHandle(forWritingAtPath: "/proc/thread-self/comm") {
                comm.write(Data(name.utf8.prefix(15)))
                try? comm.close()
            }
            runLoop()
        }
        thread.stackSize = 4 << 20
        thread.start()
    }

    // MARK: Submitting and cancelling (any thread)

    /// Queues `job`. Returns false (and ends the job) when the engine is shut down.
    @discardableResult
    func submit(_ job: ComputeJob) -> Bool {
        condition.lock()
        if stopping {
            condition.unlock()
            _ = job.abandon(.shutDown)
            job.finalDelivery?()
            return false
        }
        job.id = nextId
        nextId += 1
        jobs.append(job)
        condition.signal()
        condition.unlock()
        return true
    }

    /// Asks `job` to stop; the compute thread ends it at its next turn.
    func cancel(_ job: ComputeJob, reason: CancelReason) {
        job.requestCancel(reason)
        condition.lock()
        condition.signal()
        condition.unlock()
    }

    /// Cancels every queued or running generation of `session` (all sessions when nil); its
    /// queued session tasks (reset, the cache count) still run, after them.
    func cancelJobs(of session: SessionState?, reason: CancelReason) {
        condition.lock()
        for job in jobs where job.stopsOnRequest && (session == nil || job.session === session) { job.requestCancel(reason) }
        condition.signal()
        condition.unlock()
    }

    /// Stops taking jobs, cancels every job (they end with `EngineError.shutDown`), and lets the
    /// thread exit once they are ended.
    func shutDown() {
        condition.lock()
        stopping = true
        for job in jobs { job.requestCancel(.shutDown) }
        condition.signal()
        condition.unlock()
    }

    /// Waits until the compute thread has exited (after `shutDown`).
    func waitForExit() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            condition.lock()
            if exited {
                condition.unlock()
                c.resume()
            } else {
                exitWaiters.append(c)
                condition.unlock()
            }
        }
    }

    var isStopping: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopping
    }

    // MARK: Counters

    func sessionOpened() { withLock { counters.openSessions += 1 } }
    func sessionClosed() { withLock { counters.openSessions -= 1 } }

    var stats: EngineStats {
        withLock {
            var s = counters
            let running = partition().running.filter { $0 is GenerationJob }
            s.runningGenerations = running.count
            s.waitingGenerations = jobs.count { $0 is GenerationJob } - running.count
            return s
        }
    }

    /// Test support: (tokens generated when cancellation was requested, when the job ended)
    /// for the last cancelled jobs.
    var recentCancellations: [(id: UInt64, atRequest: Int, atEnd: Int)] { withLock { cancellationLog } }

    /// Test support: start recording the id of the job of every step.
    func startTracingSteps() { withLock { stepTrace = [] } }
    var tracedSteps: [UInt64] { withLock { stepTrace ?? [] } }

    private func withLock<T>(_ body: () -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body()
    }

    // MARK: The compute thread

    /// Running jobs (first `maxActive` eligible ones) and how many jobs wait. Under the lock.
    private func partition() -> (running: [ComputeJob], waiting: Int) {
        var running: [ComputeJob] = []
        var seen = Set<ObjectIdentifier>()
        for job in jobs {
            let key = ObjectIdentifier(job.session)
            if seen.contains(key) { continue }
            seen.insert(key)
            if running.count < maxActive { running.append(job) }
        }
        return (running, jobs.count - running.count)
    }

    private enum Work {
        case step(ComputeJob)
        case abandon(ComputeJob, CancelReason)
    }

    /// The next thing to do, or nil to exit. Waits while there is nothing. Under the lock.
    private func nextWork() -> Work? {
        while true {
            // A cancelled job that never ran can end at once, wherever it is in the queue; one
            // that ran (its session may hold part of its work) ends on its turn below.
            if let job = jobs.first(where: { $0.cancelReason != nil && !$0.hasStarted }) {
                return .abandon(job, job.cancelReason!)
            }
            let (running, _) = partition()
            if !running.isEmpty {
                let job = running.first(where: { $0.id > lastRunId }) ?? running[0]
                lastRunId = job.id
                if let reason = job.cancelReason { return .abandon(job, reason) }
                return .step(job)
            }
            if stopping { return nil }
            condition.wait()
        }
    }

    private func runLoop() {
        condition.lock()
        while let work = nextWork() {
            condition.unlock()
            let job: ComputeJob
            let report: StepReport
            let start = DispatchTime.now().uptimeNanoseconds
            switch work {
            case .step(let j):
                job = j
                j.hasStarted = true
                report = j.step(self)
            case .abandon(let j, let reason):
                job = j
                report = j.abandon(reason)
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if stepDelay > .zero, case .step = work { Thread.sleep(forTimeInterval: stepDelay.seconds) }
            condition.lock()
            counters.busySeconds += seconds
            counters.promptTokens += report.promptTokensRun
            counters.cachedPromptTokens += report.cachedPromptTokens
            counters.generatedTokens += report.tokensGenerated
            if case .step = work { stepTrace?.append(job.id) }
            if let outcome = report.outcome {
                jobs.removeAll { $0 === job }
                switch outcome {
                case .completed: counters.completedGenerations += job is GenerationJob ? 1 : 0
                case .cancelled:
                    if job is GenerationJob { counters.cancelledGenerations += 1 }
                    let atRequest = job.generatedAtCancel.load(ordering: .relaxed)
                    if atRequest >= 0 {
                        cancellationLog.append((job.id, atRequest, job.generatedCount.load(ordering: .relaxed)))
                        if cancellationLog.count > 64 { cancellationLog.removeFirst() }
                    }
                case .failed: counters.failedGenerations += 1
                }
                if let deliver = job.finalDelivery {
                    condition.unlock()
                    deliver()
                    condition.lock()
                }
            }
        }
        exited = true
        let waiters = exitWaiters
        exitWaiters.removeAll()
        condition.unlock()
        for w in waiters { w.resume() }
    }
}

extension Duration {
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}
