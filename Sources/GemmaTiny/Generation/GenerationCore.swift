import Foundation

/// One generation on an ``InferenceSession``, step by step: the one place that checks a prompt,
/// reuses the KV cache, feeds the prompt, samples, and decides when the reply ends.
///
///     start (checks, cache reuse) -> prefill steps (one chunk of prompt each) -> decode steps
///     (one sampled token each: sample, stop checks, feed) -> done
///
/// Both users drive it: ``Generator`` (the command line) runs the steps to the end on its own
/// thread, and the engine's `GenerationJob` runs one step per turn on the compute thread.
///
/// **The cache.** The session's `tokens` are the token history. `start` keeps the longest
/// prefix of them that the prompt starts with and rewinds the rest; only the prompt's other
/// tokens are run. The last prompt token is run again when its logits are not at hand (a
/// sampler used them, or the cache was rewound), since the first sample needs them. The last
/// sampled token is never fed: nothing needs its logits yet.
///
/// **Stops** (in this order, after each sampled token): `<eos>` / `<end_of_turn>` when
/// `stopAtEndOfSequence` is set or the reply is constrained (their text is not emitted), a stop
/// string, a closed JSON reply, `maxTokens`, a full context. `maxTokens` is also checked before
/// sampling, so 0 samples nothing. Text the decoder or the stop-string matcher still holds is
/// released by `finish`.
struct GenerationCore {
    /// The prompt, as the caller knows it.
    enum Prompt {
        /// The whole token sequence (the engine: every call is stateless; the cache only saves
        /// work). Too long means longer than the context.
        case whole([Int])
        /// Tokens that follow the session's tokens (``Generator``'s conversation). Empty is
        /// allowed when the session's logits are at hand. Too long means more than the context
        /// has left.
        case continuation([Int])
    }

    enum Phase: Equatable {
        case notStarted, prefill, decode, done
    }

    /// What one decode step did.
    struct Step {
        /// The token sampled, nil when the step only ended the generation (`maxTokens` reached).
        var token: Int?
        /// The token's text, stop strings removed (may be empty). nil for an end token, whose
        /// text is not part of the reply.
        var text: String?
        /// Set when the generation ended with this step.
        var stopReason: StopReason?
        /// With `stopReason`: the text released at the end.
        var tail = ""
    }

    let session: InferenceSession
    let tokenizer: Tokenizer
    let options: GenerationOptions
    private(set) var phase = Phase.notStarted
    /// The whole prompt: the reused tokens, then those still to run.
    private(set) var prompt: [Int] = []
    /// Prompt tokens found in the cache and not run again.
    private(set) var cachedTokens = 0
    /// Tokens sampled so far, a final `<eos>` / `<end_of_turn>` included.
    private(set) var generated: [Int] = []
    private(set) var stats = GenerationStats()

    private let structure: StructuredReply?
    private var constraint: JSONConstraint?
    private var sampler: Sampler
    private var decoder: StreamingDecoder
    private var matcher: StopSequenceMatcher
    private var next = 0
    private var promptStart: UInt64 = 0
    private var generationStart: UInt64 = 0

    /// The options must have passed ``prepare(_:)``; `structure` is what it returned, with the
    /// token index to use. Nothing is checked or run yet.
    init(session: InferenceSession, tokenizer: Tokenizer, options: GenerationOptions, structure: StructuredReply?) {
        self.session = session
        self.tokenizer = tokenizer
        self.options = options
        self.structure = structure
        sampler = Sampler(options: options.sampling)
        decoder = tokenizer.makeStreamingDecoder()
        matcher = StopSequenceMatcher(stopSequences: options.stopSequences)
    }

    /// Checks the options (sampling, `maxTokens`) and compiles the response format: the grammar
    /// a reply must follow, nil for free text.
    static func prepare(_ options: GenerationOptions) throws(EngineError) -> JSONGrammar? {
        do {
            try options.sampling.validate()
        } catch {
            throw .invalidOptions(error.description)
        }
        if let n = options.maxTokens, n < 0 { throw .invalidOptions("maxTokens must be >= 0, got \(n)") }
        do {
            return try JSONSchemaCompiler.grammar(for: options.responseFormat)
        } catch {
            throw .invalidOptions("response format: \(error.message)")
        }
    }

    /// The sampler's seed.
    var seed: UInt64 { sampler.seed }
    var matchedStopSequence: String? { matcher.matchedStopSequence }
    /// The prompt tokens run (or to run) by this generation: those after the cached ones.
    var promptTokensToRun: ArraySlice<Int> { prompt[cachedTokens...] }
    /// Tokens the next `prefill` runs.
    var nextChunkCount: Int { phase == .prefill ? min(session.batchSize, prompt.count - next) : 0 }
    /// Whether the next decode step would stop at `maxTokens` without sampling.
    var hasReachedMaxTokens: Bool { options.maxTokens.map { generated.count >= $0 } ?? false }

    // MARK: Steps

    /// Checks the prompt, then rewinds the session to the longest prefix it can reuse. On an
    /// error nothing has changed.
    mutating func start(_ request: Prompt) throws(EngineError) {
        precondition(phase == .notStarted, "a generation starts once")
        let (tokens, continuing) = switch request {
        case .whole(let tokens): (tokens, false)
        case .continuation(let tokens): (tokens, true)
        }
        let vocab = session.config.vocabSize, ctx = session.contextLength
        if let bad = tokens.first(where: { $0 < 0 || $0 >= vocab }) {
            throw .tokenOutOfRange(token: bad, vocabularySize: vocab)
        }
        guard !tokens.isEmpty || (continuing && session.hasLogits) else { throw .emptyPrompt }
        if continuing {
            let available = session.remainingContext
            guard tokens.count <= available else {
                throw .promptTooLong(tokens: tokens.count, available: available, contextLength: ctx)
            }
            prompt = session.tokens + tokens
        } else {
            guard tokens.count <= ctx else { throw .promptTooLong(tokens: tokens.count, contextLength: ctx) }
            prompt = tokens
        }
        // The longest common prefix of the cache and the prompt; the last prompt token again
        // unless the session's logits are the ones after it.
        let history = session.tokens
        var common = 0
        let limit = min(history.count, prompt.count)
        while common < limit && history[common] == prompt[common] { common += 1 }
        if common == prompt.count && !(common == history.count && session.hasLogits) { common -= 1 }
        if common < history.count { session.rewind(to: common) }
        constraint = structure?.makeConstraint(tokenizer: tokenizer)
        cachedTokens = common
        next = common
        promptStart = DispatchTime.now().uptimeNanoseconds
        phase = .prefill
        if next == prompt.count { endPrefill() }
    }

    /// Runs the next chunk of the prompt (`session.batchSize` tokens, at most `limit`); the
    /// logits after the last prompt token. Returns how many tokens ran.
    @discardableResult
    mutating func prefill(limit: Int = .max) throws(EngineError) -> Int {
        guard phase == .prefill else { return 0 }
        let end = min(next + min(session.batchSize, limit), prompt.count)
        guard end > next else { return 0 }
        do {
            try session.prefill(prompt[next..<end], logits: end == prompt.count ? .last : .none)
        } catch {
            throw .inference(error)
        }
        let count = end - next
        next = end
        if end == prompt.count { endPrefill() }
        return count
    }

    private mutating func endPrefill() {
        phase = .decode
        stats.promptTokens = prompt.count - cachedTokens
        stats.promptSeconds = Self.seconds(since: promptStart)
        generationStart = DispatchTime.now().uptimeNanoseconds
    }

    /// Samples one token, applies the stop rules, and feeds the token unless the reply ends.
    mutating func decode() throws(EngineError) -> Step {
        precondition(phase == .decode, "decode after the prompt")
        if hasReachedMaxTokens { return finishing(nil, .maxTokens) }
        let token: Int
        if constraint != nil {
            guard let allowed = sampler.sample(logits: session.logits, recent: session.tokens[...],
                                               constraint: &constraint!) else {
                throw .invalidOptions("response format: no token of the vocabulary can continue the reply")
            }
            constraint!.accept(allowed)
            token = allowed
        } else {
            token = sampler.sample(logits: session.logits, recent: session.tokens[...])
        }
        // The sampler changed the logits (penalties, masking): they must be computed again.
        session.invalidateLogits()
        generated.append(token)
        // A constrained reply ends at an end token whatever `stopAtEndOfSequence` says: the
        // grammar allows one only where the reply is complete.
        if options.stopAtEndOfSequence || constraint != nil {
            if token == tokenizer.eosId { return finishing(token, .endOfSequence) }
            if token == tokenizer.endOfTurnId { return finishing(token, .endOfTurn) }
        }
        let (text, stopped) = matcher.feed(decoder.append(token))
        var step = Step(token: token, text: text)
        if stopped {
            step.stopReason = .stopSequence
        } else if constraint?.isClosed == true {
            step.stopReason = .responseComplete
        } else if hasReachedMaxTokens {
            step.stopReason = .maxTokens
        } else if session.remainingContext == 0 {
            step.stopReason = .contextFull
        }
        if let reason = step.stopReason {
            (step.stopReason, step.tail) = finish(reason)
            return step
        }
        do {
            try session.forward(token: token, computeLogits: true)
        } catch {
            throw .inference(error)
        }
        return step
    }

    private mutating func finishing(_ token: Int?, _ reason: StopReason) -> Step {
        let (reason, tail) = finish(reason)
        return Step(token: token, text: nil, stopReason: reason, tail: tail)
    }

    /// Ends the generation (a stop rule, or the caller's cancellation): releases the text still
    /// held (which may complete a stop string, making the reason `.stopSequence`) and closes the
    /// timings.
    mutating func finish(_ reason: StopReason) -> (reason: StopReason, tail: String) {
        var reason = reason
        var tail = ""
        if reason != .stopSequence {
            let (text, stopped) = matcher.feed(decoder.finish())
            tail += text
            if stopped { reason = .stopSequence }
            tail += matcher.flush()
        }
        switch phase {
        case .decode:
            stats.generatedTokens = generated.count
            stats.generationSeconds = Self.seconds(since: generationStart)
        case .prefill:
            stats.promptSeconds = Self.seconds(since: promptStart)
        case .notStarted, .done:
            break
        }
        phase = .done
        return (reason, tail)
    }

    static func seconds(since start: UInt64) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }
}
