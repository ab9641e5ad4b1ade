import Foundation

/// Prompt processing and token generation on one `InferenceSession`, with the tokenizer for
/// streaming text out.
///
/// The generator keeps the conversation: every `generate` call continues after the tokens
/// already in the KV cache. The last sampled token is not fed to the model when generation
/// stops (nothing needs its logits yet); it is `pendingToken`, fed at the start of the next
/// call unless `discardPendingToken()` drops it (chat does that for `<end_of_turn>` / `<eos>`).
public final class Generator {
    public let model: GemmaModel
    public let tokenizer: Tokenizer
    public let session: InferenceSession
    /// `<end_of_turn>`, looked up by piece (nil when the vocabulary has none).
    public let endOfTurnId: Int?
    public var eosId: Int { tokenizer.eosId }
    public var bosId: Int { tokenizer.bosId }
    /// Tokens in the KV cache, in order (`history.count == session.position`).
    public private(set) var history: [Int] = []
    /// Sampled last, not yet in the KV cache.
    public private(set) var pendingToken: Int?
    /// Token bytes for constrained (JSON) replies, built the first time one is asked for.
    private var tokenIndex: TokenByteIndex?

    public init(model: GemmaModel, tokenizer: Tokenizer, session: InferenceSession) {
        self.model = model
        self.tokenizer = tokenizer
        self.session = session
        endOfTurnId = tokenizer.id(of: "<end_of_turn>")
        history.reserveCapacity(session.contextLength)
    }

    /// A generator with its own session and the model file's tokenizer.
    public convenience init(model: GemmaModel, contextLength: Int? = nil, kernels: (any MatmulKernels)? = nil,
                            batchSize: Int = InferenceSession.defaultBatchSize) throws(GenerationError) {
        let tokenizer: Tokenizer
        do {
            tokenizer = try Tokenizer(vocabulary: model.file.vocabulary, settings: model.file.metadata.tokenizer)
        } catch {
            throw .tokenizer(error)
        }
        let session: InferenceSession
        do {
            session = try InferenceSession(model: model, contextLength: contextLength, kernels: kernels,
                                           batchSize: batchSize)
        } catch {
            throw .model(error)
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
        history.removeAll(keepingCapacity: true)
        pendingToken = nil
    }

    public func discardPendingToken() { pendingToken = nil }

    /// Feeds `prompt` after the conversation so far (and after the pending token, if any), then
    /// samples until a stop condition. Text is passed to `onText` as it is produced, in whole
    /// UTF-8 characters, with stop strings already removed.
    ///
    /// - Parameters:
    ///   - dropPendingToken: drop the pending token instead of feeding it first.
    ///   - shouldStop: polled before each token (prompt and generated; a batch of prompt tokens
    ///     is polled before the batch runs); returning true ends the call with `.cancelled`.
    @discardableResult
    public func generate(prompt: [Int], options: GenerationOptions, dropPendingToken: Bool = false,
                         shouldStop: () -> Bool = { false },
                         onText: (String) -> Void = { _ in }) throws(GenerationError) -> GenerationResult {
        do {
            try options.sampling.validate()
        } catch {
            throw .invalidOptions(error.description)
        }
        if let n = options.maxTokens, n < 0 { throw .invalidOptions("max tokens must be >= 0, got \(n)") }
        var constraint = try makeConstraint(for: options.responseFormat)
        let vocab = model.config.vocabSize
        if let bad = prompt.first(where: { $0 < 0 || $0 >= vocab }) {
            throw .inference(.tokenOutOfRange(token: bad, vocabularySize: vocab))
        }
        let carried = dropPendingToken ? nil : pendingToken
        let feed = (carried.map { [$0] } ?? []) + prompt
        guard !feed.isEmpty || session.hasLogits else { throw .emptyPrompt }
        guard feed.count <= session.remainingContext else {
            throw .promptTooLong(tokens: feed.count, available: session.remainingContext, contextLength: contextLength)
        }

        var stats = GenerationStats()
        var sampler = Sampler(options: options.sampling)
        var result = GenerationResult(promptTokens: feed, generatedTokens: [], text: "", stopReason: .maxTokens,
                                      matchedStopSequence: nil, stats: stats, seed: sampler.seed)

        // Prompt processing, `session.batchSize` tokens per pass; logits only after the last
        // token. `shouldStop` is polled before each token, as a token-by-token loop would: the
        // tokens before a cancel are fed, then the whole call is undone, leaving the
        // conversation as it was before the call.
        let (startPosition, startPending, hadLogits) = (session.position, pendingToken, session.hasLogits)
        pendingToken = nil
        let promptStart = DispatchTime.now().uptimeNanoseconds
        var fed = 0
        while fed < feed.count {
            var end = min(fed + session.batchSize, feed.count)
            let cancelAt = (fed..<end).first { _ in shouldStop() }
            if let cancelAt { end = cancelAt }
            if end > fed { try run(feed[fed..<end], logits: cancelAt == nil && end == feed.count) }
            fed = end
            guard cancelAt == nil else {
                if fed > 0 {
                    session.rewind(to: startPosition)
                    history.removeLast(fed)
                }
                pendingToken = startPending
                result.stopReason = .cancelled
                stats.promptSeconds = seconds(since: promptStart)
                result.stats = stats
                if hadLogits && fed > 0 {
                    // The logits of the last kept token are gone; recompute them on the next call.
                    rewindOneForLogits()
                }
                return result
            }
        }
        stats.promptTokens = feed.count
        stats.promptSeconds = seconds(since: promptStart)

        var decoder = tokenizer.makeStreamingDecoder()
        var matcher = StopSequenceMatcher(stopSequences: options.stopSequences)
        var text = ""
        func emit(_ s: String) {
            guard !s.isEmpty else { return }
            text += s
            onText(s)
        }

        let genStart = DispatchTime.now().uptimeNanoseconds
        var reason: StopReason
        while true {
            if let n = options.maxTokens, result.generatedTokens.count >= n { reason = .maxTokens; break }
            if shouldStop() { reason = .cancelled; break }
            let token: Int
            if constraint != nil {
                guard let allowed = sampler.sample(logits: session.logits, recent: history[...],
                                                   constraint: &constraint!) else {
                    throw .invalidOptions("response format: no token of the vocabulary can continue the reply")
                }
                constraint!.accept(allowed)
                token = allowed
            } else {
                token = sampler.sample(logits: session.logits, recent: history[...])
            }
            result.generatedTokens.append(token)
            pendingToken = token
            // A constrained reply ends at an end token whatever `stopAtEndOfSequence` says: the
            // grammar allows one only where the reply is complete.
            if options.stopAtEndOfSequence || constraint != nil {
                if token == tokenizer.eosId { reason = .endOfSequence; break }
                if token == endOfTurnId { reason = .endOfTurn; break }
            }
            let (out, stopped) = matcher.feed(decoder.append(token))
            emit(out)
            if stopped { reason = .stopSequence; break }
            if constraint?.isClosed == true { reason = .responseComplete; break }
            if let n = options.maxTokens, result.generatedTokens.count >= n { reason = .maxTokens; break }
            if session.remainingContext == 0 { reason = .contextFull; break }
            pendingToken = nil
            try run(token, logits: true)
        }
        if reason != .stopSequence {
            let (out, stopped) = matcher.feed(decoder.finish())
            emit(out)
            if stopped { reason = .stopSequence }
            emit(matcher.flush())
        }
        stats.generatedTokens = result.generatedTokens.count
        stats.generationSeconds = seconds(since: genStart)
        result.text = text
        result.stopReason = reason
        result.matchedStopSequence = matcher.matchedStopSequence
        result.stats = stats
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

    private func makeConstraint(for format: ResponseFormat) throws(GenerationError) -> JSONConstraint? {
        let grammar: JSONGrammar?
        do {
            grammar = try JSONSchemaCompiler.grammar(for: format)
        } catch {
            throw .invalidOptions("response format: \(error.message)")
        }
        guard let grammar else { return nil }
        let index = tokenIndex ?? TokenByteIndex(tokenizer: tokenizer)
        tokenIndex = index
        return JSONConstraint(grammar: grammar, index: index)
    }

    /// Drops the last cached token and makes it pending again, so the next call recomputes the
    /// logits after it.
    private func rewindOneForLogits() {
        guard pendingToken == nil, let last = history.popLast() else { return }
        session.rewind(to: session.position - 1)
        pendingToken = last
    }

    private func run(_ token: Int, logits: Bool) throws(GenerationError) {
        do {
            try session.forward(token: token, computeLogits: logits)
        } catch {
            throw .inference(error)
        }
        history.append(token)
    }

    private func run(_ tokens: ArraySlice<Int>, logits: Bool) throws(GenerationError) {
        do {
            try session.prefill(tokens, logits: logits ? .last : .none)
        } catch {
            throw .inference(error)
        }
        history.append(contentsOf: tokens)
    }

    private func seconds(since start: UInt64) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }
}
