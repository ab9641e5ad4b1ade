/// How the next token is chosen from the logits. Defaults follow llama.cpp.
public struct SamplingOptions: Sendable, Equatable, Codable {
    /// 0 = greedy (argmax, ties -> lowest token id).
    public var temperature: Float
    /// Keep only the k most likely tokens. 0 = off.
    public var topK: Int
    /// Keep the smallest set of most likely tokens whose probability sums to at least topP. 1 = off.
    public var topP: Float
    /// Drop tokens whose probability is below minP times the most likely token's. 0 = off.
    public var minP: Float
    /// CTRL-style penalty for tokens seen in the last `repetitionWindow` tokens. 1 = off.
    public var repetitionPenalty: Float
    /// How many recent tokens (prompt + generated) the penalty looks at. 0 = none.
    public var repetitionWindow: Int
    /// nil = a random seed from the system.
    public var seed: UInt64?

    /// Always the most likely token; the other filters don't matter.
    public static let greedy = SamplingOptions(temperature: 0)

    public init(
        temperature: Float = 0.8,
        topK: Int = 40,
        topP: Float = 0.95,
        minP: Float = 0.05,
        repetitionPenalty: Float = 1.0,
        repetitionWindow: Int = 64,
        seed: UInt64? = nil
    ) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.repetitionWindow = repetitionWindow
        self.seed = seed
    }

    /// Throws the first invalid option. The sampler itself clamps instead of trapping, so call this
    /// where options come from users (CLI, config files).
    public func validate() throws(SamplingOptionsError) {
        // Written as negated "valid" ranges so NaN is rejected too.
        guard temperature.isFinite, temperature >= 0 else { throw .temperature(temperature) }
        guard topK >= 0 else { throw .topK(topK) }
        guard topP > 0, topP <= 1 else { throw .topP(topP) }
        guard minP >= 0, minP <= 1 else { throw .minP(minP) }
        guard repetitionPenalty.isFinite, repetitionPenalty > 0 else { throw .repetitionPenalty(repetitionPenalty) }
        guard repetitionWindow >= 0 else { throw .repetitionWindow(repetitionWindow) }
    }
}

extension SamplingOptions {
    /// Missing keys take their defaults, so a config file can set just the options it cares about.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = SamplingOptions()
        self.init(
            temperature: try c.decodeIfPresent(Float.self, forKey: .temperature) ?? d.temperature,
            topK: try c.decodeIfPresent(Int.self, forKey: .topK) ?? d.topK,
            topP: try c.decodeIfPresent(Float.self, forKey: .topP) ?? d.topP,
            minP: try c.decodeIfPresent(Float.self, forKey: .minP) ?? d.minP,
            repetitionPenalty: try c.decodeIfPresent(Float.self, forKey: .repetitionPenalty) ?? d.repetitionPenalty,
            repetitionWindow: try c.decodeIfPresent(Int.self, forKey: .repetitionWindow) ?? d.repetitionWindow,
            seed: try c.decodeIfPresent(UInt64.self, forKey: .seed)
        )
    }
}

/// An out-of-range sampling option, with the offending value.
public enum SamplingOptionsError: Error, Equatable, CustomStringConvertible, Sendable {
    case temperature(Float)
    case topK(Int)
    case topP(Float)
    case minP(Float)
    case repetitionPenalty(Float)
    case repetitionWindow(Int)

    public var description: String {
        switch self {
        case .temperature(let v): return "temperature must be a finite number >= 0 (0 = greedy), got \(v)"
        case .topK(let v): return "top-k must be >= 0 (0 = off), got \(v)"
        case .topP(let v): return "top-p must be in (0, 1] (1 = off), got \(v)"
        case .minP(let v): return "min-p must be in [0, 1] (0 = off), got \(v)"
        case .repetitionPenalty(let v): return "repetition penalty must be a finite number > 0 (1 = off), got \(v)"
        case .repetitionWindow(let v): return "repetition window must be >= 0, got \(v)"
        }
    }
}
