import Foundation

/// One generation, run by the compute thread in steps: `GenerationCore` (start and the first
/// prompt chunk, further prompt chunks, then one sampled token per step), its events sent to the
/// stream's continuation.
///
/// The session's KV cache keeps every token fed (the inference session's `tokens`); a later
/// generation reuses the longest common prefix of its prompt and those. So a cancelled or failed
/// generation needs no undo: whatever it fed stays valid as a prefix.
final class GenerationJob: ComputeJob, @unchecked Sendable {
    typealias Continuation = AsyncThrowingStream<GenerationEvent, any Error>.Continuation

    private let prompt: [Int]
    private let continuation: Continuation
    private let submitted = DispatchTime.now().uptimeNanoseconds

    // Compute thread only (and the submitting thread before the job is queued).
    private var core: GenerationCore
    private var queueSeconds = 0.0

    init(session: SessionState, prompt: [Int], options: GenerationOptions, structure: StructuredReply? = nil,
         tokenizer: Tokenizer, continuation: Continuation) {
        self.prompt = prompt
        self.continuation = continuation
        core = GenerationCore(session: session.inference, tokenizer: tokenizer, options: options, structure: structure)
        super.init(session: session)
    }

    override func step(_ scheduler: ComputeScheduler) -> StepReport {
        do throws(EngineError) {
            switch core.phase {
            case .notStarted:
                queueSeconds = GenerationCore.seconds(since: submitted)
                try core.start(.whole(prompt))
                let ran = try core.prefill()
                return StepReport(promptTokensRun: ran, cachedPromptTokens: core.cachedTokens)
            case .prefill:
                return StepReport(promptTokensRun: try core.prefill())
            case .decode:
                return try decodeStep()
            case .done:
                return StepReport(outcome: .completed)
            }
        } catch {
            // A request refused by `start` changed nothing. A failure while running may leave
            // part of a batch in the cache: start the session afresh.
            if core.phase != .notStarted { session.reset() }
            let continuation = self.continuation
            finalDelivery = { continuation.finish(throwing: error) }
            return StepReport(outcome: .failed)
        }
    }

    override func abandon(_ reason: CancelReason) -> StepReport {
        switch reason {
        case .consumerGone:
            let continuation = self.continuation
            finalDelivery = { continuation.finish() }
            return StepReport(outcome: .cancelled)
        case .requested:
            if core.phase == .done { return StepReport(outcome: .cancelled) }
            if core.phase == .notStarted { queueSeconds = GenerationCore.seconds(since: submitted) }
            var report = finish(core.finish(.cancelled))
            report.outcome = .cancelled
            return report
        case .shutDown:
            let continuation = self.continuation
            finalDelivery = { continuation.finish(throwing: EngineError.shutDown) }
            return StepReport(outcome: .cancelled)
        }
    }

    /// One sampled token: its chunk (none for an end token), and the end when it stops here.
    private func decodeStep() throws(EngineError) -> StepReport {
        let step = try core.decode()
        guard let token = step.token else { return finish((step.stopReason ?? .maxTokens, step.tail)) }
        generatedCount.store(core.generated.count, ordering: .relaxed)
        if let text = step.text { continuation.yield(.chunk(TextChunk(text: text, tokens: [token]))) }
        guard let reason = step.stopReason else { return StepReport(tokensGenerated: 1) }
        var report = finish((reason, step.tail))
        report.tokensGenerated = 1
        return report
    }

    /// Sends the held text and the summary, and ends the stream.
    private func finish(_ end: (reason: StopReason, tail: String)) -> StepReport {
        if !end.tail.isEmpty { continuation.yield(.chunk(TextChunk(text: end.tail, tokens: []))) }
        let usage = TokenUsage(promptTokens: prompt.count, cachedPromptTokens: core.cachedTokens,
                               completionTokens: core.generated.count)
        let summary = GenerationSummary(
            stopReason: end.reason, matchedStopSequence: core.matchedStopSequence, usage: usage,
            generatedTokens: core.generated, stats: core.stats, queueSeconds: queueSeconds, seed: core.seed)
        let continuation = self.continuation
        finalDelivery = {
            continuation.yield(.finished(summary))
            continuation.finish()
        }
        return StepReport(outcome: end.reason == .cancelled ? .cancelled : .completed)
    }
}
