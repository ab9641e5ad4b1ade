import Foundation

/// One entry of the distribution the sampler draws from.
public struct TokenProbability: Sendable, Equatable {
    public var token: Int
    public var probability: Float

    public init(token: Int, probability: Float) {
        self.token = token
        self.probability = probability
    }
}

/// Chooses the next token from the logits, following llama.cpp's sampler chain:
/// repetition penalty -> (temperature 0: argmax) -> top-k -> top-p -> min-p -> temperature -> draw.
///
/// Options are not validated here (see `SamplingOptions.validate()`); out-of-range values are clamped
/// the way llama.cpp treats them (temperature <= 0 is greedy, top-p <= 0 keeps one token, ...).
public struct Sampler: Sendable {
    public let options: SamplingOptions
    /// The seed actually used, so a run can be reported and reproduced.
    public let seed: UInt64
    private var rng: Xoshiro256StarStar
    /// Scratch reused across tokens so a 256k vocabulary doesn't allocate per token.
    private var candidates: [SamplingCandidate] = []

    public init(options: SamplingOptions) {
        self.options = options
        if let seed = options.seed {
            self.seed = seed
        } else {
            var system = SystemRandomNumberGenerator()
            self.seed = system.next()
        }
        rng = Xoshiro256StarStar(seed: seed)
    }

    private var isGreedy: Bool { !(options.temperature > 0) }

    /// Picks the next token. `logits` may be modified in place (repetition penalty).
    /// `recent` = previous tokens (prompt + generated) for the repetition penalty.
    public mutating func sample(logits: UnsafeMutableBufferPointer<Float>, recent: ArraySlice<Int>) -> Int {
        precondition(!logits.isEmpty, "cannot sample from an empty vocabulary")
        applyRepetitionPenalty(to: logits, recent: recent)
        return draw(logits)
    }

    /// Picks the next token among those `constraint` allows: draws as `sample` does, and only if
    /// that token is refused masks every refused token and draws again (see ``JSONConstraint``).
    /// nil when no token is allowed.
    mutating func sample(logits: UnsafeMutableBufferPointer<Float>, recent: ArraySlice<Int>,
                         constraint: inout JSONConstraint) -> Int? {
        precondition(!logits.isEmpty, "cannot sample from an empty vocabulary")
        applyRepetitionPenalty(to: logits, recent: recent)
        if !Self.maskEveryToken {
            let first = draw(logits)
            if constraint.allows(first) { return first }
        }
        guard constraint.maskDisallowed(logits) > 0 else { return nil }
        let token = draw(logits)
        return constraint.allows(token) ? token : nil
    }

    /// The sampler chain after the repetition penalty.
    private mutating func draw(_ logits: UnsafeMutableBufferPointer<Float>) -> Int {
        if isGreedy {
            let best = Self.argmax(UnsafeBufferPointer(logits))
            if Self.traceTop2 { Self.printTop2(UnsafeBufferPointer(logits), best: best) }
            return best
        }
        let total = buildCandidates(UnsafeBufferPointer(logits))
        if candidates.isEmpty { return Self.argmax(UnsafeBufferPointer(logits)) }  // every logit -inf or NaN

        let target = rng.nextUnitDouble() * total
        var cumulative = 0.0
        for c in candidates {
            cumulative += Double(c.weight)
            if cumulative > target { return Int(c.id) }
        }
        // Only reachable through rounding: take the last token that has any weight.
        return Int(candidates.last(where: { $0.weight > 0 })?.id ?? candidates[0].id)
    }

    public mutating func sample(logits: inout [Float], recent: ArraySlice<Int>) -> Int {
        logits.withUnsafeMutableBufferPointer { sample(logits: $0, recent: recent) }
    }

    /// The distribution `sample` would draw from, most likely first (ties: lowest id), without drawing.
    /// Greedy options give the argmax with probability 1. Applies the repetition penalty to `logits`.
    public mutating func distribution(logits: UnsafeMutableBufferPointer<Float>, recent: ArraySlice<Int>) -> [TokenProbability] {
        precondition(!logits.isEmpty, "cannot sample from an empty vocabulary")
        applyRepetitionPenalty(to: logits, recent: recent)
        let total = isGreedy ? 0 : buildCandidates(UnsafeBufferPointer(logits))
        if isGreedy || candidates.isEmpty {
            return [TokenProbability(token: Self.argmax(UnsafeBufferPointer(logits)), probability: 1)]
        }
        return candidates
            .map { TokenProbability(token: Int($0.id), probability: Float(Double($0.weight) / total)) }
            .sorted { $0.probability != $1.probability ? $0.probability > $1.probability : $0.token < $1.token }
    }

    public mutating func distribution(logits: inout [Float], recent: ArraySlice<Int>) -> [TokenProbability] {
        logits.withUnsafeMutableBufferPointer { distribution(logits: $0, recent: recent) }
    }

    // MARK: - Stages

    /// CTRL-style (llama.cpp's penalty_repeat): each distinct token in the window once;
    /// dividing a positive logit and multiplying a negative one both make the token less likely.
    private func applyRepetitionPenalty(to logits: UnsafeMutableBufferPointer<Float>, recent: ArraySlice<Int>) {
        let penalty = options.repetitionPenalty
        guard penalty != 1, penalty.isFinite, penalty > 0, options.repetitionWindow > 0, !recent.isEmpty else { return }
        let window = recent.suffix(options.repetitionWindow)
        var seen = Set<Int>(minimumCapacity: window.count)
        for token in window where token >= 0 && token < logits.count && seen.insert(token).inserted {
            let l = logits[token]
            logits[token] = l <= 0 ? l * penalty : l / penalty
        }
    }

    /// GEMMA_TINY_TRACE_TOP2=1: every greedy pick also prints `top2 ID1 LOGIT1 ID2 LOGIT2` (the two
    /// highest logits) on stderr, so a comparison of two builds (scripts/test-aarch64-dist.sh: aarch64
    /// against x86-64) can tell a near-tie that rounding tipped from a real difference.
    static let traceTop2 = ProcessInfo.processInfo.environment["GEMMA_TINY_TRACE_TOP2"] == "1"

    private static func printTop2(_ logits: UnsafeBufferPointer<Float>, best: Int) {
        var second = -1
        var secondValue = -Float.infinity
        for i in logits.indices where i != best && (second < 0 || logits[i] > secondValue) {
            second = i
            secondValue = logits[i]
        }
        let line = "top2 \(best) \(logits[best]) \(second) \(second >= 0 ? secondValue : -Float.infinity)\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// GEMMA_TINY_MASK_EVERY_TOKEN=1: constrained sampling computes the whole mask for every
    /// token instead of only when the first draw is refused: the worst case, for benchmarks
    /// (docs/BENCHMARKS.md). The tokens chosen are the same for greedy decoding.
    static let maskEveryToken = ProcessInfo.processInfo.environment["GEMMA_TINY_MASK_EVERY_TOKEN"] == "1"

    /// Highest logit; ties go to the lowest id and NaN never wins (all NaN -> 0).
    static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        var bestValue = -Float.infinity
        for i in logits.indices where logits[i] > bestValue {
            best = i
            bestValue = logits[i]
        }
        return best
    }

    /// Fills `candidates` with the tokens that survive top-k, top-p and min-p, each weighted by its
    /// temperature-scaled unnormalised probability; returns the sum of the weights.
    /// Tokens with logit -inf or NaN are never candidates.
    private mutating func buildCandidates(_ logits: UnsafeBufferPointer<Float>) -> Double {
        candidates.removeAll(keepingCapacity: true)
        let k = options.topK
        let useTopK = k > 0 && k < logits.count
        let useTopP = options.topP < 1
        let useMinP = options.minP > 0

        var maxLogit = -Float.infinity
        if useTopK {
            CandidateSelection.topK(logits, k, into: &candidates)
            for c in candidates { maxLogit = max(maxLogit, c.logit) }
        } else {
            for l in logits { maxLogit = max(maxLogit, l) }  // max() ignores NaN
        }
        guard maxLogit > -.infinity else { return 0 }  // every logit -inf or NaN
        if maxLogit == .infinity {
            // Degenerate, but keep it well-defined: the +inf tokens share all the probability.
            if useTopK {
                candidates.removeAll { $0.logit != .infinity }
            } else {
                for i in logits.indices where logits[i] == .infinity {
                    candidates.append(SamplingCandidate(id: Int32(i), logit: .infinity, weight: 0))
                }
            }
            for j in candidates.indices { candidates[j].weight = 1 }
            return Double(candidates.count)
        }

        // min-p as llama.cpp writes it: keep logit >= max + log(minP), i.e. p >= minP * p_max.
        let minLogit = useMinP ? maxLogit + log(min(options.minP, 1)) : -.infinity
        // Top-p needs the softmax normaliser over every candidate left by top-k, min-p or not.
        var z = 0.0
        if useTopK {
            if useTopP {
                for j in candidates.indices {
                    let w = exp(candidates[j].logit - maxLogit)
                    candidates[j].weight = w
                    z += Double(w)
                }
            }
            if useMinP { candidates.removeAll { !($0.logit >= minLogit) } }
        } else if useTopP {
            // Two passes over the vocabulary. The first finds the normaliser and how far below the best
            // logit the nucleus can reach; the second gathers only tokens within that reach (and min-p),
            // so a peaked distribution leaves a handful of candidates instead of 256k.
            let reach: Float
            (z, reach) = CandidateSelection.normaliserAndNucleusReach(logits, maxLogit: maxLogit, topP: options.topP)
            for i in logits.indices {
                let distance = maxLogit - logits[i]  // same expression as in the first pass, bit for bit
                if distance < reach && logits[i] >= minLogit {
                    candidates.append(SamplingCandidate(id: Int32(i), logit: logits[i], weight: exp(-distance)))
                }
            }
        } else {
            for i in logits.indices where logits[i] > -.infinity && logits[i] >= minLogit {
                candidates.append(SamplingCandidate(id: Int32(i), logit: logits[i], weight: 0))
            }
        }
        // llama.cpp applies top-p before min-p, but both keep a prefix of the tokens ordered by
        // probability and min-p's cut is relative to the best token, so the result is the shorter prefix.
        if useTopP { CandidateSelection.keepNucleus(&candidates, target: Double(max(options.topP, 0)) * z) }

        let temperature = options.temperature
        if temperature == 1 && useTopP {
            return candidates.reduce(0.0) { $0 + Double($1.weight) }  // already the temperature-1 weights
        }
        let inverseTemperature = 1 / temperature
        var total = 0.0
        for j in candidates.indices {
            let w = exp((candidates[j].logit - maxLogit) * inverseTemperature)
            candidates[j].weight = w
            total += Double(w)
        }
        return total
    }
}
