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

    /// What serves users defaults to f16 (as llama.cpp); the exact forward pass to f32.
    func testDefaults() throws {
        XCTAssertEqual(KVCacheType.default, .f16)
        XCTAssertEqual(MemoryEstimate.Session().cacheType, .f16, "counted as the command line runs")
        XCTAssertEqual(GemmaEngine.Options().cacheType, .f16)
        let model = try ModelFixtures.model("tiny-gemma", .q8)
        XCTAssertEqual(try InferenceSession(model: model, contextLength: 8).cacheType, .f32)
        XCTAssertEqual(try Generator(model: model, contextLength: 8).session.cacheType, .f32)
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

    /// The KV cache of the real shapes (docs/BENCHMARKS.md, issue 17), f32 and f16, as the
    /// estimate counts it: Gemma 3 270M (18 layers, every 6th global, window 512, 1 KV head of
    /// 256) at ctx 8192; Gemma 1 2B (18 layers, 1 KV head of 256) and Gemma 2 2B (26 layers
    /// alternating window 4096 / global, 4 KV heads of 256) at ctx 2048 and 8192.
    func testKVCacheOfTheRealShapes() throws {
        let g3 = ModelConfig(architecture: .gemma3, vocabSize: 262_144, hiddenSize: 640, intermediateSize: 2048,
                             numHiddenLayers: 18, numAttentionHeads: 4, numKeyValueHeads: 1, headDim: 256,
                             maxPositionEmbeddings: 32768, rmsNormEps: 1e-6, ropeTheta: 1_000_000,
                             hiddenActivation: "gelu_pytorch_tanh", embeddingScale: 25.3, slidingWindow: 512,
                             layerTypes: (0..<18).map { $0 % 6 == 5 ? ModelConfig.fullAttention : ModelConfig.slidingAttention },
                             queryPreAttnScalar: 256, ropeLocalBaseFreq: 10000, useQKNorm: true)
        let g2 = ModelConfig(architecture: .gemma2, vocabSize: 256_000, hiddenSize: 2304, intermediateSize: 9216,
                             numHiddenLayers: 26, numAttentionHeads: 8, numKeyValueHeads: 4, headDim: 256,
                             maxPositionEmbeddings: 8192, rmsNormEps: 1e-6, ropeTheta: 10000,
                             hiddenActivation: "gelu_pytorch_tanh", embeddingScale: 48, slidingWindow: 4096,
                             layerTypes: (0..<26).map { $0 % 2 == 0 ? ModelConfig.slidingAttention : ModelConfig.fullAttention },
                             attnLogitSoftcapping: 50, finalLogitSoftcapping: 30, queryPreAttnScalar: 256)
        func kv(_ c: ModelConfig, _ ctx: Int, _ type: KVCacheType) throws -> Int {
            try MemoryEstimate(config: c, weightBytes: 0, vocabularyBytes: 0,
                               session: .init(contextLength: ctx, cacheType: type)).kvCacheBytes
        }
        let cases: [(String, ModelConfig, Int, Int)] = [
            ("gemma 3 270M", g3, 8192, (3 * 8192 + 15 * 512) * 2 * 256),  // 63 MiB f32
            ("gemma 1 2B", MemoryEstimateTests.gemma2B, 2048, 18 * 2048 * 2 * 256),  // 72 MiB f32
            ("gemma 2 2B", g2, 2048, 26 * 2048 * 2 * 1024),  // 416 MiB f32
            ("gemma 2 2B", g2, 8192, (13 * 8192 + 13 * 4096) * 2 * 1024),  // 1.22 GiB f32
        ]
        for (name, c, ctx, elements) in cases {
            XCTAssertEqual(try kv(c, ctx, .f32), elements * 4, "\(name) ctx \(ctx)")
            XCTAssertEqual(try kv(c, ctx, .f16), elements * 2, "\(name) ctx \(ctx)")
            if ProcessInfo.processInfo.environment["KV_PRINT"] != nil {
                print("\(name) ctx \(ctx): f32 \(elements * 4) bytes, f16 \(elements * 2) bytes")
            }
        }
    }

    /// MemoryFit: an f16 cache is counted at 2 bytes an element in the warning, and suggested
    /// when an f32 one does not fit but an f16 one would.
    func testMemoryFitSuggestsAndCountsTheF16Cache() throws {
        let file = try ModelFixtures.model("tiny-gemma", .q8).file
        let needed = try MemoryEstimate(file: file, session: .init(contextLength: 512, threads: 2, cacheType: .f32))
        let budget = needed.totalBytes - needed.kvCacheBytes / 4
        let available = MemoryAvailability(memAvailable: budget, cgroup: nil)
        let f32 = try MemoryFit(file: file, session: .init(contextLength: 512, threads: 2, cacheType: .f32), available: available)
        XCTAssertFalse(f32.fits)
        XCTAssertTrue(f32.f16CacheFits)
        let w = try XCTUnwrap(f32.warning)
        XCTAssertTrue(w.contains("--cache-type f16"), w)
        let f16 = try MemoryFit(file: file, session: .init(contextLength: 512, threads: 2, cacheType: .f16),
                                available: available)
        XCTAssertTrue(f16.fits)
        XCTAssertNil(f16.warning)
        // Too little for either: the f16 warning names its cache and does not suggest itself.
        let tight = MemoryAvailability(memAvailable: needed.weightBytes, cgroup: nil)
        let both = try MemoryFit(file: file, session: .init(contextLength: 512, threads: 2, cacheType: .f16), available: tight)
        let w16 = try XCTUnwrap(both.warning)
        XCTAssertTrue(w16.contains("f16 KV cache for a 512-token context"), w16)
        XCTAssertFalse(w16.contains("--cache-type"), w16)
        XCTAssertTrue(w16.contains(ByteCountText.format(needed.kvCacheBytes / 2)), w16)
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
