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
    private var candidates: [Candidate] = []

    struct Candidate {
        var id: Int32
        var logit: Float
        var weight: Float  // unnormalised probability; meaning depends on the stage
    }

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
        if isGreedy { return Self.argmax(UnsafeBufferPointer(logits)) }
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
        let n = logits.count
        let k = options.topK
        if k > 0 && k < n {
            selectTopK(logits, k)
        } else {
            candidates.reserveCapacity(n)
            for i in 0..<n where logits[i] > -.infinity {
                candidates.append(Candidate(id: Int32(i), logit: logits[i], weight: 0))
            }
        }
        guard !candidates.isEmpty else { return 0 }
        var maxLogit = -Float.infinity
        for c in candidates { maxLogit = max(maxLogit, c.logit) }

        let useTopP = options.topP < 1
        let useMinP = options.minP > 0
        if useTopP || useMinP {
            // Weights at temperature 1 relative to the best token (whose weight is exactly 1),
            // so min-p is simply weight >= minP.
            var z = 0.0
            for j in candidates.indices {
                let w = exp(candidates[j].logit - maxLogit)
                candidates[j].weight = w
                z += Double(w)
            }
            applyTopPAndMinP(normaliser: z)
        }

        let temperature = options.temperature
        if temperature == 1 && (useTopP || useMinP) {
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

    /// Keeps the k highest logits (ties: lowest ids) with a min-heap whose root is the worst kept,
    /// O(n log k) instead of sorting the vocabulary.
    private mutating func selectTopK(_ logits: UnsafeBufferPointer<Float>, _ k: Int) {
        candidates.reserveCapacity(k)
        for i in logits.indices {
            let l = logits[i]
            guard l > -.infinity else { continue }  // also skips NaN
            if candidates.count < k {
                candidates.append(Candidate(id: Int32(i), logit: l, weight: 0))
                siftUp(candidates.count - 1)
            } else if l > candidates[0].logit {
                // Strictly greater: an equal logit has a higher id than everything kept, so it loses the tie.
                candidates[0] = Candidate(id: Int32(i), logit: l, weight: 0)
                siftDown(0)
            }
        }
    }

    /// Heap order: `a` is worse than `b` (lower logit, or equal logit and higher id).
    @inline(__always)
    private func isWorse(_ a: Candidate, _ b: Candidate) -> Bool {
        a.logit < b.logit || (a.logit == b.logit && a.id > b.id)
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard isWorse(candidates[child], candidates[parent]) else { return }
            candidates.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        let count = candidates.count
        while true {
            var worst = parent
            let left = 2 * parent + 1
            let right = left + 1
            if left < count && isWorse(candidates[left], candidates[worst]) { worst = left }
            if right < count && isWorse(candidates[right], candidates[worst]) { worst = right }
            if worst == parent { return }
            candidates.swapAt(parent, worst)
            parent = worst
        }
    }

    /// Top-p (nucleus over the softmax of all current candidates, at least one token) then min-p.
    /// Both keep a prefix of the candidates sorted by probability, so the result is the shorter prefix.
    /// Only candidates above a cutoff are sorted: min-p's threshold, or for top-p alone a cutoff
    /// low enough that the tokens above it already hold topP of the mass (so the nucleus lies inside).
    private mutating func applyTopPAndMinP(normaliser z: Double) {
        let useTopP = options.topP < 1
        let minWeight: Float = options.minP > 0 ? min(options.minP, 1) : 0
        let target = Double(max(options.topP, 0)) * z

        var cutoff = minWeight
        if useTopP {
            for trial: Float in [1e-2, 1e-4, 1e-6, 0] {
                cutoff = max(trial, minWeight)
                if cutoff == minWeight || trial == 0 { break }
                var mass = 0.0
                for c in candidates where c.weight >= cutoff { mass += Double(c.weight) }
                if mass >= target { break }
            }
        }
        // weight > 0 drops tokens whose temperature-1 probability underflowed; the best token (weight 1) always stays.
        candidates.removeAll { !($0.weight > 0 && $0.weight >= cutoff) }

        guard useTopP else { return }
        candidates.sort { $0.weight != $1.weight ? $0.weight > $1.weight : $0.id < $1.id }
        var cumulative = 0.0
        for j in candidates.indices {
            cumulative += Double(candidates[j].weight)
            if cumulative >= target {
                candidates.removeSubrange((j + 1)...)
                return
            }
        }
    }
}
