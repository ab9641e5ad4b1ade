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
        let k = options.topK
        let useTopK = k > 0 && k < logits.count
        let useTopP = options.topP < 1
        let useMinP = options.minP > 0

        var maxLogit = -Float.infinity
        if useTopK {
            selectTopK(logits, k)
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
                    candidates.append(Candidate(id: Int32(i), logit: .infinity, weight: 0))
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
            (z, reach) = Self.normaliserAndNucleusReach(logits, maxLogit: maxLogit, topP: options.topP)
            for i in logits.indices {
                let distance = maxLogit - logits[i]  // same expression as in the first pass, bit for bit
                if distance < reach && logits[i] >= minLogit {
                    candidates.append(Candidate(id: Int32(i), logit: logits[i], weight: exp(-distance)))
                }
            }
        } else {
            for i in logits.indices where logits[i] > -.infinity && logits[i] >= minLogit {
                candidates.append(Candidate(id: Int32(i), logit: logits[i], weight: 0))
            }
        }
        // llama.cpp applies top-p before min-p, but both keep a prefix of the tokens ordered by
        // probability and min-p's cut is relative to the best token, so the result is the shorter prefix.
        if useTopP { keepNucleus(target: Double(max(options.topP, 0)) * z) }

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

    /// The softmax normaliser (relative to the best token) and a distance below the best logit such that
    /// the tokens closer than it already hold topP of the probability, so the nucleus lies among them.
    /// Found by summing the probability in unit-wide bands of distance: one pass, no sort.
    private static func normaliserAndNucleusReach(
        _ logits: UnsafeBufferPointer<Float>, maxLogit: Float, topP: Float
    ) -> (z: Double, reach: Float) {
        let bandCount = 64
        return withUnsafeTemporaryAllocation(of: Double.self, capacity: bandCount) { bands in
            bands.initialize(repeating: 0)
            var z = 0.0
            for l in logits where l > -.infinity {
                let distance = maxLogit - l
                let w = Double(exp(-distance))
                z += w
                if distance < Float(bandCount) { bands[Int(distance)] += w }
            }
            let target = Double(max(topP, 0)) * z
            var mass = 0.0
            for band in 0..<bandCount {
                mass += bands[band]
                if mass >= target { return (z, Float(band + 1)) }
            }
            return (z, .infinity)
        }
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

    /// Token order: higher logit first, ties to the lower id. `a` is worse than `b`.
    @inline(__always)
    private static func isWorse(_ a: Candidate, _ b: Candidate) -> Bool {
        a.logit < b.logit || (a.logit == b.logit && a.id > b.id)
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.isWorse(candidates[child], candidates[parent]) else { return }
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
            if left < count && Self.isWorse(candidates[left], candidates[worst]) { worst = left }
            if right < count && Self.isWorse(candidates[right], candidates[worst]) { worst = right }
            if worst == parent { return }
            candidates.swapAt(parent, worst)
            parent = worst
        }
    }

    /// Top-p: reorders `candidates` (weights at temperature 1) so the most likely come first and keeps
    /// the shortest such prefix whose weight reaches `target` (at least one token; all of them if their
    /// total falls short). A quickselect on cumulative weight, expected O(n), so a flat distribution
    /// over 256k tokens is never fully sorted; only the last few dozen candidates are.
    private mutating func keepNucleus(target: Double) {
        guard !candidates.isEmpty else { return }
        let keep = candidates.withUnsafeMutableBufferPointer { c -> Int in
            var lo = 0
            var hi = c.count
            var needed = target  // weight still needed from c[lo...]; everything before lo is kept
            while hi - lo > 32 {
                // Median-of-three pivot, moved to the end, then a Lomuto partition: better tokens first.
                let mid = lo + (hi - lo) / 2
                var pivotIndex = mid
                let (a, b, e) = (c[lo], c[mid], c[hi - 1])
                if Self.isWorse(a, b) != Self.isWorse(a, e) {
                    pivotIndex = lo
                } else if Self.isWorse(b, a) != Self.isWorse(b, e) {
                    pivotIndex = mid
                } else {
                    pivotIndex = hi - 1
                }
                c.swapAt(pivotIndex, hi - 1)
                let pivot = c[hi - 1]
                var store = lo
                var betterMass = 0.0
                for i in lo..<(hi - 1) where Self.isWorse(pivot, c[i]) {
                    betterMass += Double(c[i].weight)
                    c.swapAt(i, store)
                    store += 1
                }
                c.swapAt(store, hi - 1)
                if betterMass >= needed {
                    hi = store  // the cut lies among the better tokens
                } else if betterMass + Double(pivot.weight) >= needed {
                    return store + 1
                } else {
                    needed -= betterMass + Double(pivot.weight)
                    lo = store + 1
                }
            }
            // Few enough left: sort them and walk.
            c[lo..<hi].sort { Self.isWorse($1, $0) }
            var cumulative = 0.0
            for j in lo..<hi {
                cumulative += Double(c[j].weight)
                if cumulative >= needed { return j + 1 }
            }
            return max(hi, 1)  // the total fell short (min-p already cut deeper, or rounding)
        }
        candidates.removeSubrange(keep...)
    }
}
