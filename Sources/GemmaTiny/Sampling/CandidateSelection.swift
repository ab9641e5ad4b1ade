import Foundation

/// A token still in the running.
struct SamplingCandidate {
    var id: Int32
    var logit: Float
    /// Unnormalised probability; at temperature 1 or the final temperature depending on the stage.
    var weight: Float

    /// Token order: higher logit first, ties to the lower id. `a` is worse than `b`.
    @inline(__always)
    static func isWorse(_ a: SamplingCandidate, _ b: SamplingCandidate) -> Bool {
        a.logit < b.logit || (a.logit == b.logit && a.id > b.id)
    }
}

/// The selection steps of the sampler that must not sort the whole vocabulary.
enum CandidateSelection {
    /// The softmax normaliser (relative to the best token) and a distance below the best logit such that
    /// the tokens closer than it already hold topP of the probability, so the nucleus lies among them.
    /// Found by summing the probability in unit-wide bands of distance: one pass, no sort.
    static func normaliserAndNucleusReach(
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
    /// O(n log k) instead of sorting the vocabulary. -inf and NaN logits are skipped. `candidates` starts empty.
    static func topK(_ logits: UnsafeBufferPointer<Float>, _ k: Int, into candidates: inout [SamplingCandidate]) {
        candidates.reserveCapacity(k)
        for i in logits.indices {
            let l = logits[i]
            guard l > -.infinity else { continue }  // also skips NaN
            if candidates.count < k {
                candidates.append(SamplingCandidate(id: Int32(i), logit: l, weight: 0))
                siftUp(&candidates, candidates.count - 1)
            } else if l > candidates[0].logit {
                // Strictly greater: an equal logit has a higher id than everything kept, so it loses the tie.
                candidates[0] = SamplingCandidate(id: Int32(i), logit: l, weight: 0)
                siftDown(&candidates, 0)
            }
        }
    }

    private static func siftUp(_ candidates: inout [SamplingCandidate], _ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard SamplingCandidate.isWorse(candidates[child], candidates[parent]) else { return }
            candidates.swapAt(child, parent)
            child = parent
        }
    }

    private static func siftDown(_ candidates: inout [SamplingCandidate], _ start: Int) {
        var parent = start
        let count = candidates.count
        while true {
            var worst = parent
            let left = 2 * parent + 1
            let right = left + 1
            if left < count && SamplingCandidate.isWorse(candidates[left], candidates[worst]) { worst = left }
            if right < count && SamplingCandidate.isWorse(candidates[right], candidates[worst]) { worst = right }
            if worst == parent { return }
            candidates.swapAt(parent, worst)
            parent = worst
        }
    }

    /// Top-p: reorders `candidates` (weights at temperature 1) so the most likely come first and keeps
    /// the shortest such prefix whose weight reaches `target` (at least one token; all of them if their
    /// total falls short). A quickselect on cumulative weight, expected O(n), so a flat distribution
    /// over 256k tokens is never fully sorted; only the last few dozen candidates are.
    static func keepNucleus(_ candidates: inout [SamplingCandidate], target: Double) {
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
                if SamplingCandidate.isWorse(a, b) != SamplingCandidate.isWorse(a, e) {
                    pivotIndex = lo
                } else if SamplingCandidate.isWorse(b, a) != SamplingCandidate.isWorse(b, e) {
                    pivotIndex = mid
                } else {
                    pivotIndex = hi - 1
                }
                c.swapAt(pivotIndex, hi - 1)
                let pivot = c[hi - 1]
                var store = lo
                var betterMass = 0.0
                for i in lo..<(hi - 1) where SamplingCandidate.isWorse(pivot, c[i]) {
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
            c[lo..<hi].sort { SamplingCandidate.isWorse($1, $0) }
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
