/// What to generate and when to stop.
public struct GenerationOptions: Sendable, Equatable {
    /// Most tokens to generate; nil = until a stop condition or the end of the context.
    public var maxTokens: Int?
    public var sampling: SamplingOptions
    /// Generation stops when the text contains one of these; the stop string and what follows it
    /// are not part of the output.
    public var stopSequences: [String]
    /// Stop at `<eos>` (and at `<end_of_turn>` when the vocabulary has it).
    public var stopAtEndOfSequence: Bool
    /// Free text, or a JSON reply enforced by constrained decoding.
    public var responseFormat: ResponseFormat

    public init(maxTokens: Int? = 256, sampling: SamplingOptions = SamplingOptions(),
                stopSequences: [String] = [], stopAtEndOfSequence: Bool = true,
                responseFormat: ResponseFormat = .text) {
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopSequences = stopSequences
        self.stopAtEndOfSequence = stopAtEndOfSequence
        self.responseFormat = responseFormat
    }

    /// Greedy decoding of at most `maxTokens` tokens.
    public static func greedy(maxTokens: Int?) -> GenerationOptions {
        GenerationOptions(maxTokens: maxTokens, sampling: .greedy)
    }
}

/// Why generation ended.
public enum StopReason: String, Sendable, Equatable, Codable {
    /// `maxTokens` tokens were generated.
    case maxTokens = "max_tokens"
    /// The model produced `<eos>`.
    case endOfSequence = "eos"
    /// The model produced `<end_of_turn>`.
    case endOfTurn = "end_of_turn"
    /// The text reached one of the stop strings.
    case stopSequence = "stop_sequence"
    /// The reply closed the JSON value its ``ResponseFormat`` asks for; nothing may follow it.
    case responseComplete = "response_complete"
    /// The KV cache is full: nothing more fits in the context.
    case contextFull = "context_full"
    /// The caller asked to stop (Ctrl-C in the CLI).
    case cancelled
}

/// Timing of one `generate` call.
public struct GenerationStats: Sendable, Equatable {
    /// Tokens run through the model before the first sampled token (this call's prompt).
    public var promptTokens: Int = 0
    public var promptSeconds: Double = 0
    /// Tokens sampled.
    public var generatedTokens: Int = 0
    /// From the first sample to the end (sampling + the forward passes of generated tokens).
    public var generationSeconds: Double = 0

    public init() {}

    public var promptTokensPerSecond: Double { promptSeconds > 0 ? Double(promptTokens) / promptSeconds : 0 }
    public var generationTokensPerSecond: Double {
        generationSeconds > 0 ? Double(generatedTokens) / generationSeconds : 0
    }
}

public struct GenerationResult: Sendable, Equatable {
    /// Tokens fed for this call (a pending token from the previous call first, if any).
    public var promptTokens: [Int]
    /// Tokens sampled, including a final `<eos>` / `<end_of_turn>`.
    public var generatedTokens: [Int]
    /// Text of the generated tokens, without the stop string and what followed it.
    public var text: String
    public var stopReason: StopReason
    /// The stop string that ended generation, for `.stopSequence`.
    public var matchedStopSequence: String?
    public var stats: GenerationStats
    /// The sampler's seed (reproduces a sampled run).
    public var seed: UInt64
}
