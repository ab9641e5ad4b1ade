import Foundation

/// Prompt processing and token generation on one `InferenceSession`, with the tokenizer for
/// streaming text out: `GenerationCore` driven to the end on the calling thread (the command
/// line's `run` and `chat`).
///
/// The generator keeps the conversation: every `generate` call continues after the tokens
/// already in the KV cache (the session's `tokens`). The last sampled token is not fed to the
/// model when generation stops (nothing needs its logits yet); it is `pendingToken`, fed at the
/// start of the next call unless `discardPendingToken()` drops it (chat does that for
/// `<end_of_turn>` / `<eos>`).
public final class Generator {
    public let model: GemmaModel
    public let tokenizer: Tokenizer
    public let session: InferenceSession
    /// `<end_of_turn>`, looked up by piece (nil when the vocabulary has none).
    public let endOfTurnId: Int?
    public var eosId: Int { tokenizer.eosId }
    public var bosId: Int { tokenizer.bosId }
    /// Tokens in the KV cache, in order: the session's `tokens`.
    public var history: [Int] { session.tokens }
    /// Sampled last, not yet in the KV cache.
    public private(set) var pendingToken: Int?
    /// Token bytes for constrained (JSON) replies, built the first time one is asked for.
    private let tokenIndex = TokenByteIndexCache()

    public init(model: GemmaModel, tokenizer: Tokenizer, session: InferenceSession) {
        self.model = model
        self.tokenizer = tokenizer
        self.session = session
        endOfTurnId = tokenizer.endOfTurnId
    }

    /// A generator with its own session and the model file's tokenizer. `cacheType` defaults to
    /// f32, as `InferenceSession`'s (the command line passes its `--cache-type`, f16 by default).
    public convenience init(model: GemmaModel, contextLength: Int? = nil, kernels: (any MatmulKernels)? = nil,
                            batchSize: Int = InferenceSession.defaultBatchSize,
                            cacheType: KVCacheType = .f32) throws(GenerationError) {
        let tokenizer: Tokenizer
        do {
            tokenizer = try Tokenizer(vocabulary: model.file.vocabulary, settings: model.file.metadata.tokenizer)
        } catch {
            throw .tokenizer(error)
        }
        let session: InferenceSession
        do {
            session = try InferenceSession(model: model, contextLength: contextLength, kernels: kernels,
                                           batchSize: batchSize, cacheType: cacheType)
        } catch {
            throw .sessionCreation(error)
        }
        self.init(model: model, tokenizer: tokenizer, session: session)
    }

    public var contextLength: Int { session.contextLength }

    /// Positions left, counting the pending token as used.
    public var remainingContext: Int { session.remainingContext - (pendingToken == nil ? 0 : 1) }

    /// `<bos>` (unless `addBos` is false) followed by the text's tokens.
    public func encodePrompt(_ text: String, addBos: Bool = true, parseSpecialTokens: Bool = false) -> [Int] {
        var ids: [Int] = addBos && tokenizer.bosId >= 0 ? [tokenizer.bosId] : []
        ids += tokenizer.encode(text, parseSpecialTokens: parseSpecialTokens)
        return ids
    }

    /// Forgets the conversation (empties the KV cache).
    public func reset() {
        session.reset()
        pendingToken = nil
    }

    public func discardPendingToken() { pendingToken = nil }

    /// Feeds `prompt` after the conversation so far (and after the pending token, if any), then
    /// samples until a stop condition (`GenerationCore` runs both). Text is passed to `onText`
    /// as it is produced, in whole UTF-8 characters, with stop strings already removed.
    ///
    /// - Parameters:
    ///   - dropPendingToken: drop the pending token instead of feeding it first.
    ///   - shouldStop: polled before each token (prompt and generated; a batch of prompt tokens
    ///     is polled before the batch runs); returning true ends the call with `.cancelled`.
    @discardableResult
    public func generate(prompt: [Int], options: GenerationOptions, dropPendingToken: Bool = false,
                         shouldStop: () -> Bool = { false },
                         onText: (String) -> Void = { _ in }) throws(GenerationError) -> GenerationResult {
        let grammar = try GenerationCore.prepare(options)
        var core = GenerationCore(session: session, tokenizer: tokenizer, options: options,
                                  structure: grammar.map { StructuredReply(grammar: $0, index: tokenIndex) })
        let carried = dropPendingToken ? nil : pendingToken
        let startPosition = session.position, startPending = pendingToken, hadLogits = session.hasLogits
        try core.start(.continuation((carried.map { [$0] } ?? []) + prompt))
        pendingToken = nil
        var result = GenerationResult(promptTokens: Array(core.promptTokensToRun), generatedTokens: [], text: "",
                                      stopReason: .maxTokens, matchedStopSequence: nil, stats: core.stats,
                                      seed: core.seed)

        // Prompt processing, a batch per step. `shouldStop` is polled before each token, as a
        // token-by-token loop would: the tokens before a cancel are fed, then the whole call is
        // undone, leaving the conversation as it was before the call.
        while core.phase == .prefill {
            let count = core.nextChunkCount
            if let cancelAt = (0..<count).first(where: { _ in shouldStop() }) {
                try core.prefill(limit: cancelAt)
                result.stopReason = core.finish(.cancelled).reason
                result.stats = core.stats
                if session.position > startPosition { session.rewind(to: startPosition) }
                pendingToken = startPending
                // The logits of the last kept token are gone: make it pending again, so that
                // the next call computes them.
                if hadLogits && !session.hasLogits && pendingToken == nil && session.position > 0 {
                    pendingToken = session.tokens.last
                    session.rewind(to: session.position - 1)
                }
                return result
            }
            try core.prefill()
        }

        var text = ""
        func emit(_ s: String) {
            guard !s.isEmpty else { return }
            text += s
            onText(s)
        }
        var reason: StopReason?
        while reason == nil {
            if !core.hasReachedMaxTokens && shouldStop() {
                let (stop, tail) = core.finish(.cancelled)
                emit(tail)
                reason = stop
                break
            }
            let step = try core.decode()
            if let text = step.text { emit(text) }
            emit(step.tail)
            reason = step.stopReason
            // The token that ends generation is not fed: it waits for the next call.
            if reason != nil, let token = step.token { pendingToken = token }
        }
        result.generatedTokens = core.generated
        result.text = text
        result.stopReason = reason!
        result.matchedStopSequence = core.matchedStopSequence
        result.stats = core.stats
        return result
    }

    /// Tokenizes `text` (with `<bos>` first when the conversation is empty) and generates.
    @discardableResult
    public func generate(text: String, options: GenerationOptions, addBos: Bool = true,
                         parseSpecialTokens: Bool = false, shouldStop: () -> Bool = { false },
                         onText: (String) -> Void = { _ in }) throws(GenerationError) -> GenerationResult {
        let ids = encodePrompt(text, addBos: addBos && history.isEmpty && pendingToken == nil,
                               parseSpecialTokens: parseSpecialTokens)
        return try generate(prompt: ids, options: options, shouldStop: shouldStop, onText: onText)
    }
}
