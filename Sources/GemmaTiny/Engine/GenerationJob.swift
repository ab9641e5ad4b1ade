import Foundation

/// One generation, run by the compute thread in steps: start (checks, KV-cache reuse), prompt
/// chunks, then one sampled token per step. Events go to the stream's continuation.
///
/// The session's KV cache keeps every token fed (`SessionState.history`); a later generation
/// reuses the longest common prefix of its prompt and that history. So a cancelled or failed
/// generation needs no undo: whatever it fed stays valid as a prefix.
final class GenerationJob: ComputeJob, @unchecked Sendable {
    typealias Continuation = AsyncThrowingStream<GenerationEvent, any Error>.Continuation

    private let prompt: [Int]
    private let options: GenerationOptions
    private let structure: StructuredReply?
    private let chunkSize: Int
    private let tokenizer: Tokenizer
    private let endOfTurnId: Int?
    private let continuation: Continuation
    private let submitted = DispatchTime.now().uptimeNanoseconds

    // Compute thread only.
    private enum Phase { case notStarted, prefill(next: Int), decode, done }
    private var phase = Phase.notStarted
    private var sampler: Sampler
    private var decoder: StreamingDecoder
    private var matcher: StopSequenceMatcher
    private var constraint: JSONConstraint?
    private var generated: [Int] = []
    private var usage = TokenUsage()
    private var stats = GenerationStats()
    private var queueSeconds = 0.0
    private var promptStart: UInt64 = 0
    private var generationStart: UInt64 = 0

    init(session: SessionState, prompt: [Int], options: GenerationOptions, structure: StructuredReply? = nil,
         chunkSize: Int, tokenizer: Tokenizer, continuation: Continuation) {
        self.prompt = prompt
        self.options = options
        self.structure = structure
        self.chunkSize = max(1, chunkSize)
        self.tokenizer = tokenizer
        endOfTurnId = tokenizer.id(of: "<end_of_turn>")
        self.continuation = continuation
        sampler = Sampler(options: options.sampling)
        decoder = tokenizer.makeStreamingDecoder()
        matcher = StopSequenceMatcher(stopSequences: options.stopSequences)
        super.init(session: session)
    }

    override func step(_ scheduler: ComputeScheduler) -> StepReport {
        do throws(EngineError) {
            switch phase {
            case .notStarted:
                var report = try start()
                let more = try prefillChunk()
                report.promptTokensRun = more.promptTokensRun
                return report
            case .prefill:
                return try prefillChunk()
            case .decode:
                return try decodeStep()
            case .done:
                return StepReport(outcome: .completed)
            }
        } catch {
            // A request refused by `start` changed nothing. A failure while running may leave
            // part of a batch in the cache: start the session afresh.
            if case .notStarted = phase {} else { session.reset() }
            phase = .done
            let continuation = self.continuation
            finalDelivery = { continuation.finish(throwing: error) }
            return StepReport(outcome: .failed)
        }
    }

    override func abandon(_ reason: CancelReason) -> StepReport {
        switch reason {
        case .consumerGone:
            phase = .done
            let continuation = self.continuation
            finalDelivery = { continuation.finish() }
            return StepReport(outcome: .cancelled)
        case .requested:
            if case .done = phase { return StepReport(outcome: .cancelled) }
            if case .notStarted = phase { queueSeconds = Self.seconds(since: submitted) }
            var report = finish(.cancelled)
            report.outcome = .cancelled
            return report
        case .shutDown:
            phase = .done
            let continuation = self.continuation
            finalDelivery = { continuation.finish(throwing: EngineError.shutDown) }
            return StepReport(outcome: .cancelled)
        }
    }

    // MARK: Steps

    /// Checks the request and rewinds the KV cache to the longest reusable prefix.
    private func start() throws(EngineError) -> StepReport {
        queueSeconds = Self.seconds(since: submitted)
        let inference = session.inference
        let vocab = inference.config.vocabSize
        if let bad = prompt.first(where: { $0 < 0 || $0 >= vocab }) {
            throw .tokenOutOfRange(token: bad, vocabularySize: vocab)
        }
        guard !prompt.isEmpty else { throw .emptyPrompt }
        guard prompt.count <= inference.contextLength else {
            throw .promptTooLong(tokens: prompt.count, contextLength: inference.contextLength)
        }
        // Reuse the cached prefix, but always run at least the last prompt token: its logits
        // are what the first sample needs.
        let history = session.history
        var common = 0
        let limit = min(history.count, prompt.count - 1)
        while common < limit && history[common] == prompt[common] { common += 1 }
        if common < history.count {
            inference.rewind(to: common)
            session.history.removeLast(history.count - common)
        }
        constraint = structure?.makeConstraint(tokenizer: tokenizer)
        usage.promptTokens = prompt.count
        usage.cachedPromptTokens = common
        phase = .prefill(next: common)
        promptStart = DispatchTime.now().uptimeNanoseconds
        return StepReport(cachedPromptTokens: common)
    }

    private func prefillChunk() throws(EngineError) -> StepReport {
        guard case .prefill(let next) = phase else { return StepReport() }
        let end = min(next + chunkSize, prompt.count)
        let chunk = prompt[next..<end]
        do {
            try session.inference.prefill(chunk, computeLogits: end == prompt.count)
        } catch {
            throw .inference(error)
        }
        session.history.append(contentsOf: chunk)
        if end == prompt.count {
            phase = .decode
            stats.promptTokens = prompt.count - usage.cachedPromptTokens
            stats.promptSeconds = Self.seconds(since: promptStart)
            generationStart = DispatchTime.now().uptimeNanoseconds
        } else {
            phase = .prefill(next: end)
        }
        return StepReport(promptTokensRun: chunk.count)
    }

    /// Samples one token, streams its text, and feeds it unless generation stops here.
    private func decodeStep() throws(EngineError) -> StepReport {
        if let n = options.maxTokens, generated.count >= n { return finish(.maxTokens) }
        let inference = session.inference
        let token: Int
        if constraint != nil {
            guard let allowed = sampler.sample(logits: inference.logits, recent: session.history[...],
                                               constraint: &constraint!) else {
                throw .invalidOptions("response format: no token of the vocabulary can continue the reply")
            }
            constraint!.accept(allowed)
            token = allowed
        } else {
            token = sampler.sample(logits: inference.logits, recent: session.history[...])
        }
        generated.append(token)
        generatedCount.store(generated.count, ordering: .relaxed)
        let report = StepReport(tokensGenerated: 1)
        func finishing(_ reason: StopReason) -> StepReport {
            var r = finish(reason)
            r.tokensGenerated = 1
            return r
        }
        // A constrained reply ends at an end token whatever `stopAtEndOfSequence` says: the
        // grammar allows one only where the reply is complete.
        if options.stopAtEndOfSequence || constraint != nil {
            if token == tokenizer.eosId { return finishing(.endOfSequence) }
            if token == endOfTurnId { return finishing(.endOfTurn) }
        }
        let (text, stopped) = matcher.feed(decoder.append(token))
        continuation.yield(.chunk(TextChunk(text: text, tokens: [token])))
        if stopped { return finishing(.stopSequence) }
        if constraint?.isClosed == true { return finishing(.responseComplete) }
        if let n = options.maxTokens, generated.count >= n { return finishing(.maxTokens) }
        if inference.remainingContext == 0 { return finishing(.contextFull) }
        do {
            try inference.forward(token: token, computeLogits: true)
        } catch {
            throw .inference(error)
        }
        session.history.append(token)
        return report
    }

    /// Flushes held text, sends the summary and ends the stream.
    private func finish(_ reason: StopReason) -> StepReport {
        var reason = reason
        var tail = ""
        if reason != .stopSequence {
            let (text, stopped) = matcher.feed(decoder.finish())
            tail += text
            if stopped { reason = .stopSequence }
            tail += matcher.flush()
        }
        if !tail.isEmpty { continuation.yield(.chunk(TextChunk(text: tail, tokens: []))) }
        if case .decode = phase {
            stats.generatedTokens = generated.count
            stats.generationSeconds = Self.seconds(since: generationStart)
        } else if case .prefill = phase {
            stats.promptSeconds = Self.seconds(since: promptStart)
        }
        usage.completionTokens = generated.count
        phase = .done
        let summary = GenerationSummary(
            stopReason: reason, matchedStopSequence: matcher.matchedStopSequence, usage: usage,
            generatedTokens: generated, stats: stats, queueSeconds: queueSeconds, seed: sampler.seed)
        let continuation = self.continuation
        finalDelivery = {
            continuation.yield(.finished(summary))
            continuation.finish()
        }
        return StepReport(outcome: reason == .cancelled ? .cancelled : .completed)
    }

    private static func seconds(since start: UInt64) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }
}
