import Foundation
@_spi(Testing) @testable import GemmaTiny
import XCTest

/// A sampled reply depends only on its prompt, options and seed: not on what else the engine
/// is generating at the same time.
final class EngineDeterminismTests: XCTestCase {
    /// The same prompt and seed (temperature 0.9, sampled), run alone and then three times while
    /// seven other sessions generate (other prompts, seeds and sampling settings; started
    /// first, still running when it ends): the same tokens and text every time.
    func testEngineSampledReplyIsTheSameAloneAndWhileSevenOthersGenerate() async throws {
        let engine = try EngineFixtures.engine(maxConcurrent: 8, chunk: 4)
        let golden = try Golden.load("tiny-gemma")
        let target = golden.prompts.first { $0.name == "short" }!.ids
        let sampled = GenerationOptions(maxTokens: 32, sampling: SamplingOptions(temperature: 0.9, topK: 0, topP: 1, minP: 0, seed: 1234),
                                        stopAtEndOfSequence: false)
        let alone = try await engine.makeSession(contextLength: 128).completion(tokens: target, options: sampled)
        XCTAssertEqual(alone.summary.generatedTokens.count, 32)
        var greedyOptions = sampled
        greedyOptions.sampling = .greedy
        let greedy = try await engine.makeSession(contextLength: 128).completion(tokens: target, options: greedyOptions)
        XCTAssertNotEqual(alone.summary.generatedTokens, greedy.summary.generatedTokens, "the reply is sampled, not greedy")

        // Seven generations that run to the end of their context unless cancelled.
        let others = try (0..<7).map { _ in try engine.makeSession() }
        let background = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (i, session) in others.enumerated() {
                    let prompt = golden.prompts[i % golden.prompts.count].ids
                    let options = GenerationOptions(
                        maxTokens: nil,
                        sampling: SamplingOptions(temperature: [0.5, 1.0, 1.5][i % 3], topK: [0, 40][i % 2], topP: 0.95,
                                                  repetitionPenalty: 1.1, seed: UInt64(i)),
                        stopAtEndOfSequence: false)
                    group.addTask { _ = try await session.completion(tokens: prompt, options: options) }
                }
                try await group.waitForAll()
            }
        }
        let othersRunning = await EngineFixtures.wait(seconds: 60) { engine.stats.runningGenerations == 7 }
        XCTAssertTrue(othersRunning, "the seven others did not start")

        for round in 0..<3 {
            let loaded = try await engine.makeSession(contextLength: 128).completion(tokens: target, options: sampled)
            XCTAssertEqual(loaded.summary.generatedTokens, alone.summary.generatedTokens, "round \(round)")
            XCTAssertEqual(loaded.text, alone.text, "round \(round)")
            XCTAssertEqual(engine.stats.runningGenerations, 7, "round \(round): the others were still generating")
        }

        background.cancel()
        for session in others { session.cancel() }
        _ = try? await background.value
        let idle = await EngineFixtures.wait { engine.stats.runningGenerations == 0 && engine.stats.waitingGenerations == 0 }
        XCTAssertTrue(idle)
    }
}
