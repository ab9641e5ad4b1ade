import Foundation
import GemmaKernels
@testable import GemmaTiny
import XCTest

/// Decoding with more threads than KV heads splits each KV head's positions over the threads by
/// segments (`InferenceSession.attendSegments`, gt_attention_partials + gt_attention_merge) once a
/// token sees more than one segment (GT_ATTENTION_SEGMENT = 256 positions). One thread takes the
/// block path (gt_attention_rows). Both fold the same segment states in the same order, so the
/// logits must be the same bit for bit at every step, on the SIMD path and the scalar one, over
/// an f32 and an f16 cache, in global and sliding-window layers.
final class DecodeSegmentTests: XCTestCase {
    func testSplitDecodingEqualsOneThreadBitForBit() throws {
        let steps = 500  // positions 0...499: two segments (the fixtures hold 512)
        for (name, threads) in [("tiny-gemma", 2), ("tiny-gemma3", 3), ("tiny-gemma-mha", 5)] {
            let model = try ModelFixtures.model(name, .q8)
            var rng = SplitMix(seed: 7)
            let ids = (0..<steps).map { _ in Int(rng.next() % UInt64(model.config.vocabSize - 4)) + 4 }
            let kernelPairs: [(any MatmulKernels, any MatmulKernels)] = [
                (makeDefaultKernels(threads: 1), makeDefaultKernels(threads: threads)),
                (ScalarKernels(), { let k = ThreadedScalarKernels(threads: threads); k.minimumParallelWork = 0; return k }()),
            ]
            for (one, many) in kernelPairs {
                for cacheType in [KVCacheType.f32, .f16] {
                    let what = "\(name) \(many.name) \(cacheType)"
                    let single = try InferenceSession(model: model, contextLength: steps, kernels: one, cacheType: cacheType)
                    let split = try InferenceSession(model: model, contextLength: steps, kernels: many, cacheType: cacheType)
                    XCTAssertNil(single.attentionPartials, what)
                    XCTAssertNotNil(split.attentionPartials, "\(what): the split path is set up")
                    for (step, id) in ids.enumerated() {
                        try single.forward(token: id)
                        try split.forward(token: id)
                        guard single.logits.elementsEqual(split.logits) else {
                            XCTFail("\(what): logits differ at position \(step)")
                            break
                        }
                    }
                }
            }
        }
    }
}
