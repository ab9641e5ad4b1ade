import Foundation
@testable import GemmaTiny
import XCTest

/// Gemma 2 and Gemma 3 (text) against transformers' Gemma2ForCausalLM / Gemma3ForCausalLM (f32,
/// eager attention), from the committed goldens `fixtures/goldens/tiny-gemma2.*` and
/// `tiny-gemma3.*` (fixtures/generate.py). Same method and figures as `ParityTests`: every golden
/// prompt teacher-forced on prompt + the reference's greedy tokens, every reference row compared,
/// and the greedy continuations regenerated.
///
/// The fixtures are built to exercise what is new: sliding window 8 (the prompts are 11 and 16
/// tokens and the reference has logits for every greedy step, so the compared rows reach
/// position 38, about 5 windows: every sliding layer's ring buffer wraps, in prefill and in decode), attention soft-cap 5 and final
/// soft-cap 2 (Gemma 2, small enough to bite on these logits), query_pre_attn_scalar 24 != head_dim
/// (Gemma 2), q/k norms and RoPE bases 10k local / 1M global (Gemma 3), 4 heads over 2 (Gemma 2)
/// and 1 (Gemma 3) KV heads. `testGemma23GoldensExerciseTheWindow` checks that the window
/// matters for the goldens (ignoring it breaks parity).
final class Gemma23ParityTests: XCTestCase {
    static let models = ["tiny-gemma2", "tiny-gemma3"]

    /// f32/bf16 as for Gemma 1 (measured: max relative error 2.2e-6 / 1.3e-6, KL ~1e-13, greedy
    /// identical). These fixtures' logits are small (std ~0.5, Gemma 2's final cap of 2 keeps
    /// them in (-2, 2)) and many positions are near-ties (the reference's smallest top-1/top-2
    /// margin is 0.0015), so quantized top-1 agreement over all positions is lower than on the
    /// Gemma 1 fixtures while the distributions are as close (q8 KL 8e-5, as Gemma 1's): the q8
    /// bound asks for every decisive position (margin >= 0.2) and 90% of all. Measured: q8
    /// 94.5% / 95.9% of all, 100% decisive, KL 8.5e-5 / 7.8e-5; q4 49% / 44% of all, 100% / 75%
    /// decisive, KL 0.021 / 0.017. The KL bounds are twice the larger measurement.
    static let bounds: [StorageType: ParityTests.Bounds] = [
        .f32: .init(maxRelativeError: 1e-4, minAgreement: 1, minDecisiveAgreement: 1, maxMeanKL: 1e-6, greedyMustMatch: true),
        .bf16: .init(maxRelativeError: 1e-4, minAgreement: 1, minDecisiveAgreement: 1, maxMeanKL: 1e-6, greedyMustMatch: true),
        .q8: .init(maxRelativeError: nil, minAgreement: 0.9, minDecisiveAgreement: 1, maxMeanKL: 2e-4, greedyMustMatch: false),
        .q4: .init(maxRelativeError: nil, minAgreement: 0.35, minDecisiveAgreement: 0.7, maxMeanKL: 0.04, greedyMustMatch: false),
    ]

    func temp(_ name: String) -> String { ModelFixtures.tempDir + "/\(UUID().uuidString)-\(name)" }

    func check(_ name: String, _ type: StorageType) throws {
        let golden = try Golden.load(name)
        let model = try ModelFixtures.model(name, type)
        XCTAssertEqual(model.config.vocabSize, golden.vocabSize)
        XCTAssertEqual(model.embedding.type, type)
        XCTAssertTrue(model.layers.allSatisfy { $0.qProj.type == type && $0.downProj.type == type })
        let cmp = try ParityTests.compare(golden, model)
        let greedy = try ParityTests.greedyMatches(golden, model)
        print("PARITY \(name) \(type): \(cmp.summary); greedy \(greedy.matched)/\(golden.prompts.count) prompts identical")
        let bounds = Self.bounds[type]!
        if let limit = bounds.maxRelativeError {
            XCTAssertLessThanOrEqual(cmp.maxRelativeError, limit, "\(name) \(type): \(cmp.summary)")
        }
        XCTAssertGreaterThanOrEqual(cmp.agreement, bounds.minAgreement, "\(name) \(type): \(cmp.summary)")
        XCTAssertGreaterThanOrEqual(cmp.decisiveAgreement, bounds.minDecisiveAgreement, "\(name) \(type): \(cmp.summary)")
        XCTAssertLessThanOrEqual(cmp.meanKL, bounds.maxMeanKL, "\(name) \(type): \(cmp.summary)")
        if bounds.greedyMustMatch {
            XCTAssertEqual(greedy.matched, golden.prompts.count, greedy.firstMismatch ?? "")
        }
    }

    func testParityTinyGemma2F32() throws { try check("tiny-gemma2", .f32) }
    func testParityTinyGemma2BF16() throws { try check("tiny-gemma2", .bf16) }
    func testParityTinyGemma2Q8() throws { try check("tiny-gemma2", .q8) }
    func testParityTinyGemma2Q4() throws { try check("tiny-gemma2", .q4) }
    func testParityTinyGemma3F32() throws { try check("tiny-gemma3", .f32) }
    func testParityTinyGemma3BF16() throws { try check("tiny-gemma3", .bf16) }
    func testParityTinyGemma3Q8() throws { try check("tiny-gemma3", .q8) }
    func testParityTinyGemma3Q4() throws { try check("tiny-gemma3", .q4) }

    /// The SIMD kernels (the default) meet the f32 bounds too.
    func testParityGemma23DefaultKernels() throws {
        for name in Self.models {
            let golden = try Golden.load(name)
            let model = try ModelFixtures.model(name, .bf16)
            let kernels = makeDefaultKernels(threads: 2)
            let cmp = try ParityTests.compare(golden, model, kernels: kernels)
            let greedy = try ParityTests.greedyMatches(golden, model, kernels: kernels)
            print("PARITY \(name) bf16 \(kernels.name): \(cmp.summary); greedy \(greedy.matched)/\(golden.prompts.count)")
            XCTAssertLessThanOrEqual(cmp.maxRelativeError, 1e-4, "\(name): \(cmp.summary)")
            XCTAssertEqual(cmp.agreement, 1, "\(name): \(cmp.summary)")
            XCTAssertEqual(greedy.matched, golden.prompts.count, greedy.firstMismatch ?? "")
        }
    }

    /// The configuration the fixtures were made with is what the runtime resolved.
    func testGemma23VariantFromConfig() throws {
        let g2 = try ModelFixtures.model("tiny-gemma2", .f32)
        XCTAssertEqual(g2.architecture, .gemma2)
        XCTAssertEqual(g2.variant.layers.map(\.window), [8, nil, 8, nil])
        XCTAssertEqual(g2.variant.ropeThetas, [10000])
        XCTAssertEqual(g2.variant.attentionScale, Float(1 / Double(24).squareRoot()))
        XCTAssertEqual(g2.variant.attentionSoftcap, 5)
        XCTAssertEqual(g2.variant.finalSoftcap, 2)
        XCTAssertFalse(g2.variant.hasQKNorm)
        XCTAssertTrue(g2.layers.allSatisfy { $0.postAttentionNorm != nil && $0.postFeedforwardNorm != nil && $0.qNorm == nil })

        let g3 = try ModelFixtures.model("tiny-gemma3", .f32)
        XCTAssertEqual(g3.architecture, .gemma3)
        XCTAssertEqual(g3.variant.layers.map(\.window), [8, 8, nil, 8])
        XCTAssertEqual(g3.variant.layers.map { g3.variant.ropeThetas[$0.ropeIndex] }, [10000, 10000, 1_000_000, 10000])
        XCTAssertEqual(g3.variant.attentionScale, 0.25)
        XCTAssertNil(g3.variant.attentionSoftcap)
        XCTAssertNil(g3.variant.finalSoftcap)
        XCTAssertTrue(g3.variant.hasQKNorm)
        XCTAssertTrue(g3.layers.allSatisfy { $0.qNorm?.scale.count == 16 && $0.kNorm?.scale.count == 16 })

        let g1 = try ModelFixtures.model("tiny-gemma", .f32)
        XCTAssertFalse(g1.variant.hasSlidingLayers)
        XCTAssertTrue(g1.layers.allSatisfy { $0.postAttentionNorm == nil && $0.postFeedforwardNorm == nil })
    }

    /// Sliding layers hold `window` positions whatever the context; global layers the context.
    func testGemma23SlidingWindowCacheDoesNotGrowBeyondTheWindow() throws {
        for name in Self.models {
            let model = try ModelFixtures.model(name, .f32)
            let c = model.config
            let kvDim = c.numKeyValueHeads * c.headDim
            let window = try XCTUnwrap(c.slidingWindow)
            for ctx in [4, 64, 512] {
                let session = try InferenceSession(model: model, contextLength: ctx, kernels: ScalarKernels())
                var expected = 0
                for layer in 0..<c.numHiddenLayers {
                    let want = c.isSlidingLayer(layer) ? min(window, ctx) : ctx
                    XCTAssertEqual(session.kvCacheCapacity(layer: layer), want, "\(name) ctx \(ctx) layer \(layer)")
                    expected += 2 * want * kvDim * 4
                }
                XCTAssertEqual(session.kvCacheBytes, expected, "\(name) ctx \(ctx)")
            }
            // A Gemma 1 model of the same context holds every position in every layer.
            let g1 = try ModelFixtures.model("tiny-gemma", .f32)
            let s1 = try InferenceSession(model: g1, contextLength: 512)
            XCTAssertEqual(s1.kvCacheBytes, 2 * 512 * g1.config.numKeyValueHeads * g1.config.headDim * 4 * g1.config.numHiddenLayers)

            // Filling a long context leaves the sliding layers' share unchanged and the results
            // right: 200 tokens (25 windows) one at a time against one batched prefill.
            let ids = (0..<200).map { ($0 * 37 + 11) % c.vocabSize }
            let reference = try tokenByToken(model, ids, kernels: ScalarKernels())
            let session = try InferenceSession(model: model, contextLength: 256, kernels: ScalarKernels(), batchSize: 64)
            let before = session.kvCacheBytes
            try checkAll(session, ids[...], reference: reference, offset: 0, "\(name) 200 tokens")
            XCTAssertEqual(session.kvCacheBytes, before)
        }
    }

    /// Batched prefill against one token at a time, for every batch size and kernel set, with
    /// batches longer than the window, batches starting mid-window, and decoding after them.
    func testGemma23PrefillBatchedMatchesTokenByToken() throws {
        let threaded = ThreadedScalarKernels(threads: 2)
        threaded.minimumParallelWork = 0
        for name in Self.models {
            let golden = try Golden.load(name)
            let p = golden.prompts.max { $0.ids.count < $1.ids.count }!
            let ids = p.ids + p.greedyIds  // 40 tokens, 5 windows
            for type in [StorageType.f32, .q8] {
                let model = try ModelFixtures.model(name, type)
                for kernels in [ScalarKernels() as any MatmulKernels, threaded, makeDefaultKernels(threads: 2)] {
                    let reference = try tokenByToken(model, ids, kernels: kernels)
                    for batch in [1, 3, 8, 13, 64] {
                        let what = "\(name) \(type) \(kernels.name) batch \(batch)"
                        let session = try InferenceSession(model: model, contextLength: 64, kernels: kernels, batchSize: batch)
                        try checkAll(session, ids[...], reference: reference, offset: 0, what)

                        session.reset()
                        try session.prefill(ids, logits: .last)
                        XCTAssertLessThanOrEqual(PrefillTests.relativeError(UnsafeBufferPointer(session.logits), reference.last!),
                                                 PrefillTests.tolerance, "\(what): .last")

                        // 5 tokens, then a batch from the middle of a window, then decoding.
                        session.reset()
                        try session.prefill(ids[0..<5], logits: .none)
                        try checkAll(session, ids[5..<(ids.count - 3)], from: 3, reference: reference, offset: 5,
                                                    "\(what): continued")
                        for j in (ids.count - 3)..<ids.count {
                            try session.forward(token: ids[j])
                            XCTAssertLessThanOrEqual(PrefillTests.relativeError(UnsafeBufferPointer(session.logits), reference[j]),
                                                     PrefillTests.tolerance, "\(what): decode at \(j)")
                        }
                    }
                }
            }
        }
    }

    /// Rewinding: by one position the ring keeps everything; further back than a window behind
    /// the furthest position fed, the session re-feeds its tokens. Either way the logits that
    /// follow are the ones of an uninterrupted run.
    func testGemma23RewindAcrossTheRing() throws {
        for name in Self.models {
            let model = try ModelFixtures.model(name, .f32)
            let golden = try Golden.load(name)
            let p = golden.prompts.max { $0.ids.count < $1.ids.count }!
            let ids = p.ids + p.greedyIds
            let reference = try tokenByToken(model, ids, kernels: ScalarKernels())
            for batch in [1, 8] {
                let what = "\(name) batch \(batch)"
                let session = try InferenceSession(model: model, contextLength: 64, kernels: ScalarKernels(), batchSize: batch)
                try session.prefill(ids[0..<30], logits: .none)
                XCTAssertTrue(session.canRewindInPlace(to: 29), what)
                XCTAssertFalse(session.canRewindInPlace(to: 28), what)
                XCTAssertTrue(session.canRewindInPlace(to: 30), what)
                // In place.
                session.rewind(to: 29)
                try checkAll(session, ids[29..<34], reference: reference, offset: 29, "\(what): rewind 1")
                // Far back: rebuilt.
                XCTAssertFalse(session.canRewindInPlace(to: 12), what)
                session.rewind(to: 12)
                XCTAssertEqual(session.position, 12)
                XCTAssertFalse(session.hasLogits)
                try checkAll(session, ids[12...], reference: reference, offset: 12, "\(what): rewind to 12")
                // Before the first window wraps, every rewind is in place.
                session.reset()
                try session.prefill(ids[0..<6], logits: .none)
                XCTAssertTrue(session.canRewindInPlace(to: 0), what)
                session.rewind(to: 2)
                try checkAll(session, ids[2..<20], reference: reference, offset: 2, "\(what): early rewind")
            }
        }
    }

    /// The goldens depend on the sliding window: the same model with the window widened to the
    /// whole context misses the reference by far more than the parity bound.
    func testGemma23GoldensExerciseTheWindow() throws {
        for name in Self.models {
            let path = temp("\(name)-nowindow.gtm")
            try ModelFileRewriter.rewrite(try ModelFixtures.convertedPath(name, .f32), to: path,
                                          metadata: { $0.config.slidingWindow = 512 })
            let model = try GemmaModel.load(path: path)
            let cmp = try ParityTests.compare(try Golden.load(name), model)
            print("PARITY \(name) with the window ignored: \(cmp.summary)")
            XCTAssertGreaterThan(cmp.maxRelativeError, 1e-2, "\(name): \(cmp.summary)")
        }
    }

    /// Gemma 2/3 settings on a Gemma 1 file, and a Gemma 3 file without its q/k norms, are refused.
    func testGemma23InconsistentConfigurationsAreRefused() throws {
        let g1 = temp("gemma1-softcap.gtm")
        try ModelFileRewriter.rewrite(try ModelFixtures.convertedPath("tiny-gemma", .bf16), to: g1,
                                      metadata: { $0.config.attnLogitSoftcapping = 50 })
        XCTAssertThrowsError(try GemmaModel.load(path: g1)) { error in
            guard case .unsupportedConfiguration = error as? ModelError else { return XCTFail("\(error)") }
        }
        let g3 = temp("gemma3-no-qk.gtm")
        try ModelFileRewriter.rewrite(try ModelFixtures.convertedPath("tiny-gemma3", .bf16), to: g3,
                                      tensor: { $0.name.hasSuffix("k_norm.weight") ? nil : ($0.name, $0.shape) })
        XCTAssertThrowsError(try GemmaModel.load(path: g3)) { error in
            XCTAssertTrue("\(error)".contains("k_norm"), "\(error)")
        }
    }
}
