import Foundation
@testable import GemmaTiny
import XCTest

/// Logit parity with transformers' GemmaForCausalLM (f32, eager attention) on the fixture
/// models, from the committed goldens (no torch needed).
///
/// Relative error: for each position, max_i |ours_i - ref_i| / max_i |ref_i|; the figure quoted
/// is the maximum over all positions of all prompts. Positions are teacher-forced on the
/// golden sequence (prompt + the reference's greedy tokens).
final class ParityTests: XCTestCase {
    /// Runs every golden prompt through `model` teacher-forced and compares every logits row.
    func compare(_ name: String, _ type: StorageType) throws -> LogitComparison {
        let golden = try Golden.load(name)
        let model = try ModelFixtures.model(name, type)
        XCTAssertEqual(model.config.vocabSize, golden.vocabSize)
        let session = try InferenceSession(model: model, contextLength: 256)
        var cmp = LogitComparison()
        for prompt in golden.prompts {
            session.reset()
            let sequence = prompt.ids + prompt.greedyIds
            for row in 0..<prompt.logitsRows {
                try session.forward(token: sequence[row])
                cmp.add(ours: UnsafeBufferPointer(session.logits), reference: golden.referenceRow(prompt, row))
            }
        }
        return cmp
    }

    func testParityDebugF32() throws {
        let c = try compare("tiny-gemma", .f32)
        print("tiny-gemma f32: \(c.summary)")
    }
}

final class ModelDebugTests: XCTestCase {
    func testDebugDump() throws {
        let model = try ModelFixtures.model("tiny-gemma", .f32)
        for ctx in [16, 512] {
            let s = try InferenceSession(model: model, contextLength: ctx)
            for t in [2, 591, 294, 304, 302, 304, 1592] {
                try s.forward(token: t)
                print("ctx", ctx, "pos", s.position - 1, Array(s.logits[0..<3]), LogitComparison.argmax(s.logits))
            }
        }
        let g = try Generator(model: model, contextLength: 512)
        let r = try g.generate(prompt: [2, 591, 294, 304, 302, 304, 1592], options: .greedy(maxTokens: 5))
        print("gen", r.generatedTokens)
    }
}
