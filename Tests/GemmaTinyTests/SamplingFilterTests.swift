import Foundation
import XCTest
@testable import GemmaTiny

/// Top-k, top-p, min-p and the repetition penalty.
final class SamplerFilterTests: XCTestCase {
    private typealias F = SamplingFixtures

    /// Probabilities by token id; sorted: 1 (0.5), 4 (0.2), 3 (0.15), 0 (0.1), 2 (0.05).
    private let p = [0.1, 0.5, 0.05, 0.15, 0.2]

    private func options(topK: Int = 0, topP: Float = 1, minP: Float = 0, temperature: Float = 1) -> SamplingOptions {
        SamplingOptions(temperature: temperature, topK: topK, topP: topP, minP: minP, seed: 11)
    }

    private func support(_ o: SamplingOptions) -> [Int] {
        F.distribution(o, F.logits(forProbabilities: p)).map(\.token)
    }

    private func assertDistribution(_ o: SamplingOptions, _ expected: [(Int, Double)],
                                    file: StaticString = #filePath, line: UInt = #line) {
        let d = F.distribution(o, F.logits(forProbabilities: p))
        XCTAssertEqual(d.map(\.token), expected.map(\.0), file: file, line: line)
        let total = expected.reduce(0) { $0 + $1.1 }
        for (got, want) in zip(d, expected) {
            XCTAssertEqual(Double(got.probability), want.1 / total, accuracy: 1e-5, file: file, line: line)
        }
    }

    // MARK: Top-k

    func testTopKOneEqualsGreedy() {
        var source = Xoshiro256StarStar(seed: 21)
        for seed in 0..<50 {
            let l = (0..<1000).map { _ in Float(source.nextUnitDouble() * 10 - 5) }
            var greedy = Sampler(options: .greedy)
            var topOne = Sampler(options: SamplingOptions(temperature: 1.5, topK: 1, seed: UInt64(seed)))
            var a = l, b = l
            XCTAssertEqual(topOne.sample(logits: &b, recent: []), greedy.sample(logits: &a, recent: []))
        }
    }

    func testTopKRestrictsSupport() {
        let l = (0..<20).map { Float($0 % 7) * 0.1 + Float($0) * 0.01 }  // best three: 13 (0.73), 19 (0.69), 6 (0.66)
        var sampler = Sampler(options: options(topK: 3))
        var seen = Set<Int>()
        for _ in 0..<5000 {
            var copy = l
            seen.insert(sampler.sample(logits: &copy, recent: []))
        }
        XCTAssertEqual(seen, [6, 13, 19])
        assertDistribution(options(topK: 2), [(1, 0.5), (4, 0.2)])
    }

    func testTopKTiesAtTheBoundaryKeepLowestIds() {
        let d = F.distribution(options(topK: 2), [1, 2, 2, 2, 0])
        XCTAssertEqual(d.map(\.token), [1, 2])
        let e = F.distribution(options(topK: 3), [5, 1, 1, 5, 1, 1])
        XCTAssertEqual(e.map(\.token), [0, 3, 1])
    }

    func testTopKLargerThanVocabularyKeepsEverything() {
        XCTAssertEqual(support(options(topK: 100)), [1, 4, 3, 0, 2])
    }

    // MARK: Top-p

    func testTopPKeepsTheHandComputedNucleus() {
        // Cumulative: 0.5, 0.7, 0.85, 0.95, 1.0.
        assertDistribution(options(topP: 0.45), [(1, 0.5)])
        assertDistribution(options(topP: 0.6), [(1, 0.5), (4, 0.2)])
        assertDistribution(options(topP: 0.75), [(1, 0.5), (4, 0.2), (3, 0.15)])
        assertDistribution(options(topP: 0.9), [(1, 0.5), (4, 0.2), (3, 0.15), (0, 0.1)])
        assertDistribution(options(topP: 0.99), [(1, 0.5), (4, 0.2), (3, 0.15), (0, 0.1), (2, 0.05)])
    }

    func testTopPAlwaysKeepsOneToken() {
        XCTAssertEqual(support(options(topP: 0.0001)), [1])
        XCTAssertEqual(support(options(topP: 0)), [1])  // invalid, but clamped rather than empty
    }

    func testTopPIsComputedAfterTopK() {
        // Over all tokens 0.6 needs two; after top-k 2 the best alone has 0.5 / 0.7 = 0.71.
        XCTAssertEqual(support(options(topP: 0.6)), [1, 4])
        XCTAssertEqual(support(options(topK: 2, topP: 0.6)), [1])
    }

    func testTopPDrawsStayInTheNucleus() {
        var sampler = Sampler(options: options(topP: 0.75))
        var counts = [Int: Int]()
        for _ in 0..<6000 {
            var l = F.logits(forProbabilities: p)
            counts[sampler.sample(logits: &l, recent: []), default: 0] += 1
        }
        XCTAssertEqual(Set(counts.keys), [1, 4, 3])
        XCTAssertEqual(Double(counts[1]!) / 6000, 0.5 / 0.85, accuracy: 0.03)
    }

    // MARK: Min-p

    func testMinPThreshold() {
        // Threshold is minP * 0.5.
        assertDistribution(options(minP: 0.25), [(1, 0.5), (4, 0.2), (3, 0.15)])
        assertDistribution(options(minP: 0.35), [(1, 0.5), (4, 0.2)])
        assertDistribution(options(minP: 0.05), [(1, 0.5), (4, 0.2), (3, 0.15), (0, 0.1), (2, 0.05)])
        XCTAssertEqual(support(options(minP: 1)), [1])
    }

    func testTopPAndMinPTogetherKeepTheSmallerSet() {
        XCTAssertEqual(support(options(topP: 0.9, minP: 0.35)), [1, 4])  // min-p is stricter
        XCTAssertEqual(support(options(topP: 0.6, minP: 0.1)), [1, 4])   // top-p is stricter
        XCTAssertEqual(support(options(topK: 4, topP: 0.99, minP: 0.25)), [1, 4, 3])
    }

    func testFiltersApplyBeforeTemperature() {
        // Top-p/min-p pick the set at temperature 1; temperature only reweights that set.
        let hot = F.distribution(options(topP: 0.75, temperature: 5), F.logits(forProbabilities: p))
        XCTAssertEqual(hot.map(\.token), [1, 4, 3])
        let weights = [0.5, 0.2, 0.15].map { pow($0, 0.2) }
        let total = weights.reduce(0, +)
        for (got, w) in zip(hot, weights) { XCTAssertEqual(Double(got.probability), w / total, accuracy: 1e-5) }
    }

    // MARK: Repetition penalty

    func testRepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits() {
        var sampler = Sampler(options: SamplingOptions(temperature: 0, repetitionPenalty: 2))
        var l: [Float] = [2, 1, -1, 0.5, 0]
        _ = sampler.sample(logits: &l, recent: [0, 2, 0, 0, 4])  // repeats count once
        XCTAssertEqual(l, [1, 1, -2, 0.5, 0])
    }

    func testRepetitionPenaltyLowersRepeatedTokens() {
        let base: [Float] = [2, 1, -1, 0.5]
        let plain = F.distribution(F.unfiltered(), base)
        let penalised = F.distribution(SamplingOptions(temperature: 1, topK: 0, topP: 1, minP: 0,
                                                       repetitionPenalty: 1.5, seed: 1), base, recent: [0, 2])
        func probability(_ d: [TokenProbability], _ token: Int) -> Float { d.first { $0.token == token }!.probability }
        XCTAssertLessThan(probability(penalised, 0), probability(plain, 0))
        XCTAssertLessThan(probability(penalised, 2), probability(plain, 2))
        XCTAssertGreaterThan(probability(penalised, 1), probability(plain, 1))

        // Changes the greedy choice when the leader was just used.
        var greedy = Sampler(options: SamplingOptions(temperature: 0, repetitionPenalty: 1.5))
        var l: [Float] = [2, 1.9]
        XCTAssertEqual(greedy.sample(logits: &l, recent: [0]), 1)
    }

    func testRepetitionWindowLimitsWhichTokensArePenalised() {
        var sampler = Sampler(options: SamplingOptions(temperature: 0, repetitionPenalty: 2, repetitionWindow: 2))
        var l: [Float] = [4, 4, 4, 4]
        _ = sampler.sample(logits: &l, recent: [0, 1, 3])
        XCTAssertEqual(l, [4, 2, 4, 2])

        var off = Sampler(options: SamplingOptions(temperature: 0, repetitionPenalty: 2, repetitionWindow: 0))
        var m: [Float] = [4, 4]
        _ = off.sample(logits: &m, recent: [0, 1])
        XCTAssertEqual(m, [4, 4])

        // Out-of-range ids (e.g. special markers) are ignored rather than trapping.
        var ranged = Sampler(options: SamplingOptions(temperature: 0, repetitionPenalty: 2))
        var n: [Float] = [4, 4]
        _ = ranged.sample(logits: &n, recent: [-1, 99, 1])
        XCTAssertEqual(n, [4, 2])
    }

    func testPenaltyOfOneLeavesLogitsUntouched() {
        var sampler = Sampler(options: SamplingOptions(seed: 2))
        var l: [Float] = [2, -1, 0.5]
        _ = sampler.sample(logits: &l, recent: [0, 1, 2])
        XCTAssertEqual(l, [2, -1, 0.5])
    }

    // MARK: Large vocabulary

    /// 256k logits shaped like a language model's: a few strong candidates over a long tail.
    private func largeLogits(seed: UInt64) -> [Float] {
        var source = Xoshiro256StarStar(seed: seed)
        var l = (0..<256_000).map { _ in Float(source.nextUnitDouble() * 6 - 3) }
        for _ in 0..<30 { l[Int.random(in: 0..<l.count, using: &source)] += 12 }
        return l
    }

    func testLargeVocabularyWorksWithEveryFilterPath() {
        let l = largeLogits(seed: 8)
        let configurations = [
            SamplingOptions(seed: 1),                                              // defaults: heap top-k
            SamplingOptions(topK: 0, seed: 1),                                     // min-p cutoff, then top-p
            SamplingOptions(topK: 0, topP: 0.9, minP: 0, seed: 1),                 // top-p via threshold search
            SamplingOptions(temperature: 1.3, topK: 0, topP: 1, minP: 0, seed: 1), // full softmax
            SamplingOptions(temperature: 0.7, topK: 5000, topP: 0.98, minP: 0.01, seed: 1),
            SamplingOptions(temperature: 0, repetitionPenalty: 1.3, seed: 1),
        ]
        for o in configurations {
            var sampler = Sampler(options: o)
            let start = Date()
            var recent: [Int] = []
            for _ in 0..<10 {
                var copy = l
                let token = sampler.sample(logits: &copy, recent: recent[...])
                XCTAssertTrue((0..<l.count).contains(token))
                recent.append(token)
            }
            print("256k vocabulary, 10 tokens in \(String(format: "%.1f", Date().timeIntervalSince(start) * 1000)) ms: \(o)")
        }
    }

    /// The band cut-off and the quickselect must find exactly the nucleus a full sort finds.
    func testLargeVocabularyTopPMatchesFullSort() {
        let cases: [(seed: UInt64, topP: Float, shape: String)] = [
            (8, 0.9, "peaked"), (9, 0.5, "peaked"), (10, 0.999, "flat"), (11, 0.7, "flat"), (12, 0.95, "ties"),
        ]
        for c in cases {
            var l = largeLogits(seed: c.seed)
            if c.shape == "flat" { l = l.map { $0 / 6 } }  // the nucleus is most of the vocabulary
            if c.shape == "ties" { l = l.map { ($0 / 3).rounded() } }  // only a few distinct values
            let maxLogit = l.max()!
            let weights = l.map { exp($0 - maxLogit) }
            let z = weights.reduce(0.0) { $0 + Double($1) }
            // Most likely first, ties to the lowest id.
            let order = l.indices.sorted { l[$0] != l[$1] ? l[$0] > l[$1] : $0 < $1 }
            var cumulative = 0.0
            var expected = order.count
            for (j, id) in order.enumerated() {
                cumulative += Double(weights[id])
                if cumulative >= Double(c.topP) * z { expected = j + 1; break }
            }
            let d = F.distribution(SamplingOptions(temperature: 1, topK: 0, topP: c.topP, minP: 0, seed: 1), l)
            XCTAssertEqual(d.count, expected, "\(c)")
            XCTAssertEqual(Set(d.map(\.token)), Set(order.prefix(expected)), "\(c)")
            XCTAssertEqual(d.reduce(0) { $0 + Double($1.probability) }, 1, accuracy: 1e-4)

            // With top-k on as well, the same nucleus computed over the k best.
            let k = 3000
            let topK = Array(order.prefix(k))
            let zK = topK.reduce(0.0) { $0 + Double(weights[$1]) }
            cumulative = 0
            var expectedK = k
            for (j, id) in topK.enumerated() {
                cumulative += Double(weights[id])
                if cumulative >= Double(c.topP) * zK { expectedK = j + 1; break }
            }
            let dK = F.distribution(SamplingOptions(temperature: 1, topK: k, topP: c.topP, minP: 0, seed: 1), l)
            XCTAssertEqual(Set(dK.map(\.token)), Set(topK.prefix(expectedK)), "top-k \(c)")
        }
    }
}
