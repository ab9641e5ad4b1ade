import CGemmaTiny
import Foundation
import GemmaTiny
import Synchronization

/// What a `gt_session *` points to: a session, its model (kept loaded), the result of its last
/// generation, and what gt_session_cancel needs to reach a running generation.
final class SessionHandle: @unchecked Sendable {
    let model: ModelHandle
    let session: GemmaSession
    /// Set while a gt_generate / gt_chat runs (a second one fails with GT_ERR_SESSION_BUSY).
    private let busy = Atomic<Bool>(false)
    private let lock = NSLock()
    // Guarded by `lock`:
    private var cancelRequested = false
    private var running: EventQueue?
    private var last = gt_result()

    init(model: ModelHandle, session: GemmaSession) {
        self.model = model
        self.session = session
    }

    static func from(_ pointer: OpaquePointer?) throws -> SessionHandle {
        guard let pointer else { throw CABIError.null("session") }
        return Unmanaged<SessionHandle>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
    }

    var lastResult: gt_result { lock.withLock { last } }

    /// A call that fails its checks is a failed generation: its result is all zero (the
    /// header's promise). A generation already running keeps its own (it is reset when it starts).
    func clearLastResult() {
        lock.withLock { if running == nil { last = gt_result() } }
    }

    /// gt_session_cancel: stops the running generation, if any (any thread).
    func cancel() {
        lock.withLock {
            guard let running else { return }
            cancelRequested = true
            running.push(.wake)
        }
        session.cancel()
    }

    /// Runs the generation `start` begins, on the calling thread: each piece of text goes to
    /// `callback` here; a non-zero return (or gt_session_cancel) cancels the generation, and
    /// this returns once it has ended. Throws what the generation fails with.
    func run(callback: gt_callback, userData: UnsafeMutableRawPointer?,
             _ start: (GemmaSession) -> AsyncThrowingStream<GenerationEvent, any Error>) throws {
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            throw CABIError(GT_ERR_SESSION_BUSY, "a generation is already running on this session")
        }
        defer { busy.store(false, ordering: .releasing) }
        let queue = EventQueue()
        lock.withLock {
            cancelRequested = false
            running = queue
            last = gt_result()
        }
        defer { lock.withLock { running = nil } }

        let stream = start(session)
        let reader = Task.detached { await queue.pump(stream) }
        // The compute thread may run ahead of the callback. Once the callback says stop, the
        // result is "cancelled" with the tokens delivered so far, whatever the engine did after.
        var stopped = false
        var delivered = 0
        var summary: GenerationSummary?
        var failure: (any Error)?
        var ended = false
        while !ended {
            for item in queue.take() {
                switch item {
                case .text(let text, let tokens):
                    if !stopped && lock.withLock({ cancelRequested }) {
                        stopped = true
                        session.cancel()
                    }
                    guard !stopped else { continue }
                    delivered += tokens
                    guard !text.isEmpty else { continue }
                    let verdict = text.withCString { callback($0, text.utf8.count, userData) }
                    if verdict != 0 {
                        stopped = true
                        session.cancel()
                    }
                case .finished(let s): summary = s
                case .failed(let e): failure = e
                case .ended: ended = true
                case .wake: break
                }
            }
            if !stopped && lock.withLock({ cancelRequested }) {
                stopped = true
                session.cancel()
            }
        }
        _ = reader  // it has pushed .ended: the task is done
        if let failure { throw failure }
        guard let summary else {
            throw CABIError(GT_ERR_INTERNAL, "the generation ended without a summary")
        }
        var result = Self.result(summary)
        if stopped {
            result.stop_reason = GT_STOP_CANCELLED
            result.completion_tokens = delivered
        }
        lock.withLock { last = result }
    }

    static func result(_ s: GenerationSummary) -> gt_result {
        let reason: gt_stop_reason
        switch s.stopReason {
        case .maxTokens: reason = GT_STOP_MAX_TOKENS
        case .endOfSequence: reason = GT_STOP_END_OF_SEQUENCE
        case .endOfTurn: reason = GT_STOP_END_OF_TURN
        case .stopSequence: reason = GT_STOP_STOP_STRING
        case .responseComplete: reason = GT_STOP_RESPONSE_COMPLETE
        case .contextFull: reason = GT_STOP_CONTEXT_FULL
        case .cancelled: reason = GT_STOP_CANCELLED
        }
        return gt_result(stop_reason: reason, prompt_tokens: s.usage.promptTokens,
                         cached_prompt_tokens: s.usage.cachedPromptTokens,
                         completion_tokens: s.usage.completionTokens, seed: s.seed,
                         prompt_seconds: s.stats.promptSeconds, generation_seconds: s.stats.generationSeconds)
    }
}
