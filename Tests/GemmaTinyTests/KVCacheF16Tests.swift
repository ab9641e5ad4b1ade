import Foundation
@testable import GemmaTiny
import XCTest

/// The f16 KV cache (`KVCacheType.f16`): a session over it gives the same logits batched as one
/// token at a time (the batch's keys are rounded before they are attended, as the cache holds
/// them), stays close to the f32 cache, and takes half its memory, as the estimate says.
final class KVCacheF16Tests: XCTestCase {
    func sequence() throws -> [Int] {
        let golden = try Golden.load("tiny-gemma")
        let p = golden.prompts.max { $0.ids.count < $1.ids.count }!
        return p.ids + p.greedyIds
    }

    func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        a.withUnsafeBufferPointer { PrefillTests.relativeError($0, b) }
    }

    /// Every position's logits, fed `batch` tokens at a time.
    func logits(_ model: GemmaModel, _ ids: [Int], batch: Int, type: KVCacheType, kernels: any MatmulKernels,
                contextLength: Int = 128) throws -> [[Float]] {
        let session = try InferenceSession(model: model, contextLength: contextLength, kernels: kernels, batchSize: batch,
                                           cacheType: type)
        XCTAssertEqual(session.cacheType, type)
        var out: [[Float]] = []
        try session.prefill(ids, logits: .all(from: 0) { _, l in out.append(Array(l)) })
        return out
    }

    func testF16CacheBatchedMatchesTokenByTokenAndStaysNearF32() throws {
        let ids = try sequence()
        for (name, fixture) in [("gemma 1", "tiny-gemma"), ("gemma 3, sliding layers", "tiny-gemma3")] {
            let model = try ModelFixtures.model(fixture, .f32)
            for kernels in [ScalarKernels() as any MatmulKernels, makeDefaultKernels()] {
                // A context short enough for the sliding layers' rings to wrap.
                let one = try logits(model, ids, batch: 1, type: .f16, kernels: kernels)
                let f32 = try logits(model, ids, batch: 1, type: .f32, kernels: kernels)
                var worst = 0.0
                for (a, b) in zip(one, f32) {
                    worst = max(worst, relativeError(a, b))
                }
                XCTAssertLessThan(worst, 5e-3, "\(name) \(kernels.name): f16 vs f32 cache")
                XCTAssertGreaterThan(worst, 0, "\(name) \(kernels.name): the f16 cache changes nothing?")
                for batch in [3, 8, 64] {
                    let batched = try logits(model, ids, batch: batch, type: .f16, kernels: kernels)
                    XCTAssertEqual(batched.count, one.count)
                    for (j, (a, b)) in zip(batched, one).enumerated() {
                        let e = relativeError(a, b)
                        XCTAssertLessThanOrEqual(e, PrefillTests.tolerance, "\(name) \(kernels.name) batch \(batch) position \(j)")
                    }
                }
            }
        }
    }

    func testF16CacheHalvesTheMemoryAndTheEstimateSaysSo() throws {
        for fixture in ["tiny-gemma", "tiny-gemma3"] {
            let model = try ModelFixtures.model(fixture, .q8)
            for (ctx, batch, threads) in [(512, 64, 2), (5, 8, 1)] {
                var sizes: [KVCacheType: Int] = [:]
                for type in KVCacheType.allCases {
                    let session = try InferenceSession(model: model, contextLength: ctx,
                                                       kernels: makeDefaultKernels(threads: threads), batchSize: batch,
                                                       cacheType: type)
                    try session.prefill([2, 10], logits: .all(from: 0) { _, _ in })
                    let e = try MemoryEstimate(file: model.file, session: .init(contextLength: ctx, batchSize: batch,
                                                                                threads: threads, cacheType: type))
                    XCTAssertEqual(e.cacheType, type)
                    XCTAssertEqual(e.kvCacheBytes, session.kvCacheBytes, "\(fixture) \(type) ctx \(ctx)")
                    XCTAssertEqual(e.activationBytes, session.activationBufferBytes, "\(fixture) \(type) ctx \(ctx)")
                    sizes[type] = session.kvCacheBytes
                }
                XCTAssertEqual(sizes[.f16]! * 2, sizes[.f32]!, "\(fixture) ctx \(ctx)")
            }
        }
        // The 2B shape at ctx 2048: 18 layers x 256 x 2048 x 2 x 2 bytes = 36 MiB (72 MiB in f32).
        let c = MemoryEstimateTests.gemma2B
        let f16 = try MemoryEstimate(config: c, weightBytes: 0, vocabularyBytes: 0,
                                     session: .init(contextLength: 2048, cacheType: .f16))
        XCTAssertEqual(f16.kvCacheBytes, 18 * 256 * 2048 * 2 * 2)
    }

    /// Rewinding and continuing over an f16 cache gives what feeding the tokens afresh gives.
    func testF16CacheRewindAndReset() throws {
        let ids = try sequence()
        let model = try ModelFixtures.model("tiny-gemma3", .f32)
        let session = try InferenceSession(model: model, contextLength: 128, kernels: ScalarKernels(), batchSize: 8,
                                           cacheType: .f16)
        try session.prefill(ids, logits: .last)
        let expected = Array(session.logits)
        session.rewind(to: 20)
        try session.prefill(ids[20...], logits: .last)
        XCTAssertLessThanOrEqual(relativeError(Array(session.logits), expected), PrefillTests.tolerance)
        session.reset()
        try session.prefill(ids, logits: .last)
        XCTAssertEqual(Array(session.logits), expected)
    }
}
