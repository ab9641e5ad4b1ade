/// One conversation on a ``GemmaEngine``: a KV cache of its own over the engine's shared weights.
///
/// Each call takes a complete prompt (or the complete list of chat messages) and generates a
/// reply; the result does not depend on what the session ran before. What the session keeps
/// is speed: its KV cache holds the tokens it last ran, and a new prompt that starts with the
/// same tokens (the next turn of the same chat, a fixed system prompt) skips them. Use one
/// session per conversation to get that reuse.
///
/// Calls return at once with an `AsyncThrowingStream` of ``GenerationEvent``s: a ``TextChunk``
/// per sampled token, then one ``GenerationSummary``. The work happens on the engine's compute
/// thread (see ``GemmaEngine`` for the scheduling); a session may be used from several tasks
/// at once, and its generations then run one after the other in call order.
///
/// Errors (``EngineError``) are thrown by the stream: invalid options, a prompt longer than the
/// context, an engine shut down. Cancelling the consuming task, or dropping the stream, stops
/// the generation within one token; the stream then ends without a summary, and the session is
/// free for the next call.
public final class GemmaSession: Sendable {
    public let engine: GemmaEngine
    let state: SessionState

    init(engine: GemmaEngine, state: SessionState) {
        self.engine = engine
        self.state = state
        engine.scheduler.sessionOpened()
    }

    deinit {
        engine.scheduler.sessionClosed()
    }

    /// Positions this session's KV cache holds: prompt plus reply must fit.
    public var contextLength: Int { state.inference.contextLength }

    /// Continues `prompt` (plain text; `<bos>` is added first, control tokens in the text are
    /// not parsed).
    public func generate(prompt: String, options: GenerationOptions = GenerationOptions())
        -> AsyncThrowingStream<GenerationEvent, any Error> {
        let tokenizer = engine.tokenizer
        var ids = tokenizer.bosId >= 0 ? [tokenizer.bosId] : []
        ids += tokenizer.encode(prompt)
        return generate(tokens: ids, options: options)
    }

    /// Continues a prompt given as token ids, used exactly as given (no `<bos>` added).
    public func generate(tokens: [Int], options: GenerationOptions = GenerationOptions())
        -> AsyncThrowingStream<GenerationEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream<GenerationEvent, any Error>.makeStream()
        let grammar: JSONGrammar?
        do throws(EngineError) {
            grammar = try GenerationCore.prepare(options)
        } catch {
            continuation.finish(throwing: error)
            return stream
        }
        let scheduler = engine.scheduler
        let structure = grammar.map { StructuredReply(grammar: $0, index: engine.tokenIndex) }
        let job = GenerationJob(session: state, prompt: tokens, options: options, structure: structure,
                                tokenizer: engine.tokenizer, continuation: continuation)
        continuation.onTermination = { termination in
            if case .cancelled = termination { scheduler.cancel(job, reason: .consumerGone) }
        }
        scheduler.submit(job)
        return stream
    }

    /// Replies to a conversation with the model's chat template (``GemmaChatTemplate``:
    /// system messages are folded into the first user turn, since Gemma has no system role).
    /// Pass the whole conversation every time; the session's cache skips the part it has seen.
    /// The reply ends at `<end_of_turn>` (unless `options.stopAtEndOfSequence` is false).
    public func chat(messages: [ChatMessage], options: GenerationOptions = GenerationOptions())
        -> AsyncThrowingStream<GenerationEvent, any Error> {
        do throws(EngineError) {
            let ids = try GemmaChatTemplate.tokens(for: messages, tokenizer: engine.tokenizer)
            return generate(tokens: ids, options: options)
        } catch {
            let (stream, continuation) = AsyncThrowingStream<GenerationEvent, any Error>.makeStream()
            continuation.finish(throwing: error)
            return stream
        }
    }

    /// ``generate(prompt:options:)``, collected: the whole text and the summary.
    ///
    /// - Throws: ``EngineError``; ``EngineError/cancelled`` when the calling task is cancelled.
    public func completion(prompt: String, options: GenerationOptions = GenerationOptions()) async throws(EngineError) -> Completion {
        try await Self.collect(generate(prompt: prompt, options: options))
    }

    /// ``generate(tokens:options:)``, collected: the whole text and the summary.
    ///
    /// - Throws: ``EngineError``; ``EngineError/cancelled`` when the calling task is cancelled.
    public func completion(tokens: [Int], options: GenerationOptions = GenerationOptions()) async throws(EngineError) -> Completion {
        try await Self.collect(generate(tokens: tokens, options: options))
    }

    /// ``chat(messages:options:)``, collected: the whole reply and the summary.
    ///
    /// - Throws: ``EngineError``; ``EngineError/cancelled`` when the calling task is cancelled.
    public func chatCompletion(messages: [ChatMessage], options: GenerationOptions = GenerationOptions()) async throws(EngineError) -> Completion {
        try await Self.collect(chat(messages: messages, options: options))
    }

    /// Stops this session's running and queued generations: each ends with a summary whose
    /// stop reason is `.cancelled` (text generated so far included). A queued `reset()` or
    /// `cachedTokenCount()` still runs, after them.
    public func cancel() {
        engine.scheduler.cancelJobs(of: state, reason: .requested)
    }

    /// Empties the KV cache (after this session's queued generations). Only memory use changes:
    /// results never depend on the cache. After the engine's `shutdown()` it does nothing (the
    /// cache went with the engine's compute thread).
    public func reset() async {
        let scheduler = engine.scheduler
        let state = self.state
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let job = SessionTaskJob(session: state, body: { $0.reset() }, done: { _ in c.resume() })
            scheduler.submit(job)
        }
    }

    /// Tokens in the KV cache (after this session's queued generations); 0 after the engine's
    /// `shutdown()`.
    public func cachedTokenCount() async -> Int {
        let scheduler = engine.scheduler
        let state = self.state
        let box = ResultBox()
        // `body` and `done` run one after the other on the compute thread (or only `done`, on
        // the submitting thread, when the engine is shutting down): the count leaves that thread
        // as the continuation's value, not through a variable read after the await (which
        // ThreadSanitizer, blind to the continuation's synchronisation, reported as a race).
        return await withCheckedContinuation { (c: CheckedContinuation<Int, Never>) in
            let job = SessionTaskJob(session: state, body: { box.value = $0.inference.position },
                                     done: { _ in c.resume(returning: box.value) })
            scheduler.submit(job)
        }
    }

    static func collect(_ stream: AsyncThrowingStream<GenerationEvent, any Error>) async throws(EngineError) -> Completion {
        var text = ""
        do {
            for try await event in stream {
                switch event {
                case .chunk(let c): text += c.text
                case .finished(let summary): return Completion(text: text, summary: summary)
                }
            }
        } catch let error as EngineError {
            throw error
        } catch {
            throw .cancelled
        }
        throw .cancelled
    }
}

/// Carries one value from the compute thread to the awaiting task (the continuation orders it).
private final class ResultBox: @unchecked Sendable {
    var value = 0
}
