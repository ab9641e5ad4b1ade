/// A piece of generated text and the token(s) it came from.
///
/// Every sampled token is delivered in one chunk (`tokens == [id]`), in order, with the text it
/// completed. That text can be empty: a token may end in the middle of a UTF-8 character, or
/// its text may be held back because it could be the start of a stop string; the held text
/// arrives with a later token. At the end, text still held (and not part of a stop string)
/// comes in one last chunk with no tokens. The end-of-turn / end-of-sequence token that ends a
/// reply is not delivered as a chunk; it is counted in ``TokenUsage/completionTokens``.
/// Concatenating every chunk's text gives the whole reply, stop strings removed.
public struct TextChunk: Sendable, Hashable {
    public var text: String
    public var tokens: [Int]

    public init(text: String, tokens: [Int]) {
        self.text = text
        self.tokens = tokens
    }
}

/// Token counts of one generation, as the OpenAI API reports them.
public struct TokenUsage: Sendable, Hashable, Codable {
    /// Tokens of the prompt, `<bos>` and chat-template tokens included.
    public var promptTokens: Int
    /// Of those, how many were already in the session's KV cache and were not run again.
    public var cachedPromptTokens: Int
    /// Tokens sampled, including a final `<eos>` / `<end_of_turn>`.
    public var completionTokens: Int

    public var totalTokens: Int { promptTokens + completionTokens }

    public init(promptTokens: Int = 0, cachedPromptTokens: Int = 0, completionTokens: Int = 0) {
        self.promptTokens = promptTokens
        self.cachedPromptTokens = cachedPromptTokens
        self.completionTokens = completionTokens
    }
}

/// How a generation ended: the last event of every stream that was not cancelled by its consumer.
public struct GenerationSummary: Sendable, Equatable {
    public var stopReason: StopReason
    /// The stop string that ended generation, for ``StopReason/stopSequence``.
    public var matchedStopSequence: String?
    public var usage: TokenUsage
    /// Every sampled token, the final `<eos>` / `<end_of_turn>` included.
    public var generatedTokens: [Int]
    /// Prompt tokens actually run (the cached ones are not) and the time they took; generated
    /// tokens and theirs.
    public var stats: GenerationStats
    /// Seconds between the request and its first step on the compute thread (waiting for
    /// earlier requests of the same session, or for a free generation slot).
    public var queueSeconds: Double
    /// The sampler's seed: pass it as `SamplingOptions.seed` to reproduce a sampled reply.
    public var seed: UInt64

    public init(stopReason: StopReason, matchedStopSequence: String? = nil, usage: TokenUsage = TokenUsage(),
                generatedTokens: [Int] = [], stats: GenerationStats = GenerationStats(), queueSeconds: Double = 0,
                seed: UInt64 = 0) {
        self.stopReason = stopReason
        self.matchedStopSequence = matchedStopSequence
        self.usage = usage
        self.generatedTokens = generatedTokens
        self.stats = stats
        self.queueSeconds = queueSeconds
        self.seed = seed
    }
}

/// What a generation stream delivers: text chunks as tokens are sampled, then one summary.
public enum GenerationEvent: Sendable, Equatable {
    case chunk(TextChunk)
    case finished(GenerationSummary)

    /// The chunk's text; nil for `.finished`.
    public var text: String? {
        if case .chunk(let c) = self { return c.text }
        return nil
    }
}

/// A whole reply, collected from a generation stream.
public struct Completion: Sendable, Equatable {
    public var text: String
    public var summary: GenerationSummary

    public init(text: String, summary: GenerationSummary) {
        self.text = text
        self.summary = summary
    }
}

/// Counters of an engine since it was created. A snapshot: ``GemmaEngine/stats``.
public struct EngineStats: Sendable, Equatable {
    /// Sessions alive (made by `makeSession` and not yet released).
    public var openSessions = 0
    /// Generations being interleaved on the compute thread now.
    public var runningGenerations = 0
    /// Generations waiting: for a free slot (`maxConcurrentGenerations`) or for an earlier
    /// generation of the same session.
    public var waitingGenerations = 0
    /// Generations that ended with a summary (any stop reason but a consumer's cancellation).
    public var completedGenerations = 0
    /// Generations stopped because their consumer went away or asked to cancel (`cancel()`,
    /// `cancelAll()`: these still end with a `.cancelled` summary), or because the engine shut
    /// down (these end with `EngineError.shutDown`).
    public var cancelledGenerations = 0
    /// Generations that ended with an error (other than a shutdown: `cancelledGenerations`).
    public var failedGenerations = 0
    /// Prompt tokens run through the model.
    public var promptTokens = 0
    /// Prompt tokens reused from KV caches instead of being run.
    public var cachedPromptTokens = 0
    /// Tokens sampled.
    public var generatedTokens = 0
    /// Seconds the compute thread spent running the model and sampling.
    public var busySeconds: Double = 0

    public init() {}
}
