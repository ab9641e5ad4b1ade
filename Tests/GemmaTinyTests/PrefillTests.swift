import Foundation
@testable import GemmaTiny
import XCTest

/// Batched prompt processing (`InferenceSession.prefill`) against feeding the same tokens one at
/// a time: the same logits at every position (within 1e-5 relative), whatever the batch size,
/// where the batches start, and how they meet the end of the context.
final class PrefillTests: XCTestCase {
    static let tolerance = 1e-5

    /// max_i |a_i - b_i| / max_i |b_i|.
    static func relativeError(_ a: UnsafeBufferPointer<Float>, _ b: [Float]) -> Double {
        precondition(a.count == b.count)
        var maxRef = 0.0, maxDiff = 0.0
        for (x, y) in zip(a, b) {
            maxRef = max(maxRef, abs(Double(y)))
            maxDiff = max(maxDiff, abs(Double(x) - Double(y)))
        }
        return maxRef > 0 ? maxDiff / maxRef : maxDiff
    }

    /// A token sequence longer than every batch size tested: the longest golden prompt and its
    /// greedy continuation (61 tokens).
    func sequence() throws -> [Int] {
        let golden = try Golden.load("tiny-gemma")
        let p = golden.prompts.max { $0.ids.count < $1.ids.count }!
        return p.ids + p.greedyIds
    }

    func testPrefillBatchedMatchesTokenByToken() throws {
        let ids = try sequence()
        let threaded = ThreadedScalarKernels(threads: 3)
        threaded.minimumParallelWork = 0
        for (name, type) in [("tiny-gemma", StorageType.f32), ("tiny-gemma", .q4), ("tiny-gemma-mha", .bf16), ("tiny-gemma-mha", .q8)] {
            let model = try ModelFixtures.model(name, type)
            for kernels in [ScalarKernels() as any MatmulKernels, threaded, makeDefaultKernels()] {
                let reference = try tokenByToken(model, ids, kernels: kernels)
                for batch in [1, 3, 8, 64] {
                    let what = "\(name) \(type) \(kernels.name) batch \(batch)"
                    let session = try InferenceSession(model: model, contextLength: 128, kernels: kernels, batchSize: batch)
                    XCTAssertEqual(session.batchSize, batch)
                    // Every position's logits.
                    try checkAll(session, ids[...], reference: reference, offset: 0, what)
                    XCTAssertEqual(session.position, ids.count)

                    // Only the last token's logits.
                    session.reset()
                    try session.prefill(ids, logits: .last)
                    XCTAssertTrue(session.hasLogits)
                    XCTAssertLessThanOrEqual(Self.relativeError(UnsafeBufferPointer(session.logits), reference.last!),
                                             Self.tolerance, "\(what): .last")

                    // Batches starting mid-way: 5 tokens, then the rest, scored from its 4th token;
                    // then decoding continues one token at a time from the batched cache.
                    session.reset()
                    try session.prefill(ids[0..<5], logits: .none)
                    XCTAssertFalse(session.hasLogits)
                    try checkAll(session, ids[5..<(ids.count - 3)], from: 3, reference: reference, offset: 5, "\(what): continued")
                    for j in (ids.count - 3)..<ids.count {
                        try session.forward(token: ids[j])
                        XCTAssertLessThanOrEqual(Self.relativeError(UnsafeBufferPointer(session.logits), reference[j]),
                                                 Self.tolerance, "\(what): decode at \(j)")
                    }
                }
            }
        }
    }

    /// Batches that end exactly at the end of the context, a prompt that does not fit, and a
    /// bad token in the middle of a batch (the session is left unchanged by both errors).
    func testPrefillAtTheContextBoundary() throws {
        let ids = try sequence()
        let model = try ModelFixtures.model("tiny-gemma", .f32)
        let reference = try tokenByToken(model, ids, kernels: ScalarKernels())
        let ctx = 20
        for batch in [1, 3, 8] {
            let what = "batch \(batch)"
            let session = try InferenceSession(model: model, contextLength: ctx, kernels: ScalarKernels(), batchSize: batch)
            // 7 tokens, then 13 more that fill the context exactly (the last batch is partial).
            try session.prefill(ids[0..<7], logits: .last)
            XCTAssertLessThanOrEqual(Self.relativeError(UnsafeBufferPointer(session.logits), reference[6]), Self.tolerance, what)
            try checkAll(session, ids[7..<ctx], reference: reference, offset: 7, "\(what): to the end of the context")
            XCTAssertEqual(session.remainingContext, 0)
            XCTAssertThrowsError(try session.forward(token: 5)) {
                XCTAssertEqual($0 as? InferenceError, .contextFull(contextLength: ctx), what)
            }

            // One token too many: nothing is fed.
            session.rewind(to: 10)
            XCTAssertThrowsError(try session.prefill(ids[10...(ctx)], logits: .last)) {
                XCTAssertEqual($0 as? InferenceError, .contextFull(contextLength: ctx), what)
            }
            XCTAssertEqual(session.position, 10)
            // A bad id in the middle: nothing is fed.
            var bad = Array(ids[10..<ctx])
            bad[4] = model.config.vocabSize
            XCTAssertThrowsError(try session.prefill(bad, logits: .last)) {
                XCTAssertEqual($0 as? InferenceError, .tokenOutOfRange(token: model.config.vocabSize,
                                                                      vocabularySize: model.config.vocabSize), what)
            }
            XCTAssertEqual(session.position, 10)
            // The cache up to the rewind point is intact: refilling gives the same logits.
            try checkAll(session, ids[10..<ctx], from: 9, reference: reference, offset: 10, "\(what): after rewind")
            // Nothing to feed changes nothing.
            try session.prefill([Int](), logits: .last)
            XCTAssertTrue(session.hasLogits)
            XCTAssertEqual(session.position, ctx)
        }
        // A batch larger than the context is capped to it.
        XCTAssertEqual(try InferenceSession(model: model, contextLength: 5, batchSize: 64).batchSize, 5)
    }

    /// `.all(from:)` past the last token scores nothing but still leaves the last logits.
    func testPrefillAllFromPastTheEnd() throws {
        let ids = try sequence()
        let model = try ModelFixtures.model("tiny-gemma-mha", .f32)
        let reference = try tokenByToken(model, Array(ids[0..<10]), kernels: ScalarKernels())
        let session = try InferenceSession(model: model, contextLength: 32, batchSize: 4)
        var calls = 0
        try session.prefill(ids[0..<10], logits: .all(from: 10) { _, _ in calls += 1 })
        XCTAssertEqual(calls, 0)
        XCTAssertTrue(session.hasLogits)
        XCTAssertLessThanOrEqual(Self.relativeError(UnsafeBufferPointer(session.logits), reference[9]), Self.tolerance)
    }

    /// The generator feeds prompts in batches: the greedy continuations are the reference's
    /// whatever the batch size, and a prompt longer than one batch is fed in several.
    func testPrefillGeneratorBatchSizesGiveTheSameTokens() throws {
        let golden = try Golden.load("tiny-gemma")
        let model = try ModelFixtures.model("tiny-gemma", .bf16)
        for batch in [1, 3, 8, InferenceSession.defaultBatchSize] {
            let generator = try Generator(model: model, contextLength: 128, batchSize: batch)
            for p in golden.prompts {
                generator.reset()
                var options = GenerationOptions.greedy(maxTokens: p.greedyIds.count)
                options.stopAtEndOfSequence = false
                let result = try generator.generate(prompt: p.ids, options: options)
                XCTAssertEqual(result.generatedTokens, p.greedyIds, "\(p.name) batch \(batch)")
                XCTAssertEqual(result.stats.promptTokens, p.ids.count)
            }
        }
    }
}
