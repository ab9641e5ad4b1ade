import Foundation
@testable import GemmaTiny
import XCTest

/// `gemma-tiny run` / `gemma-tiny chat` (the CLI's `Generator`, run as a process) and the
/// `GemmaEngine` API (the engine's `GenerationJob` on its compute thread) run the same
/// generation core: the same prompt, seed and options give the same tokens, with and without a
/// response format. On the tiny fixture, and on the real Gemma 3 270M when GEMMA3_270M_GGUF is set.
final class CLIEngineParityTests: XCTestCase {
    static let schema = #"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]}"#

    /// Sampling that exercises every stage of the sampler chain, with a fixed seed.
    static let samplingFlags = ["--temp", "0.9", "--top-k", "40", "--top-p", "0.95", "--min-p", "0.05",
                                "--repeat-penalty", "1.1", "--repeat-last-n", "32", "--seed", "20251"]
    static let sampling = SamplingOptions(temperature: 0.9, topK: 40, topP: 0.95, minP: 0.05,
                                          repetitionPenalty: 1.1, repetitionWindow: 32, seed: 20251)

    /// The formats compared: free text, then constrained replies.
    static let formats: [(flags: [String], format: ResponseFormat)] = [
        ([], .text),
        (["--json-object"], .jsonObject),
        (["--json-schema", schema], .jsonSchema(schema)),
    ]

    func testRunAndChatGiveTheEngineTokensOnTheFixture() async throws {
        try await check(modelPath: try ModelFixtures.convertedPath("tiny-gemma", .bf16), context: nil)
    }

    func testRunAndChatGiveTheEngineTokensOnGemma3() async throws {
        guard let gguf = ProcessInfo.processInfo.environment["GEMMA3_270M_GGUF"], !gguf.isEmpty else {
            throw XCTSkip("set GEMMA3_270M_GGUF to the file scripts/fetch-gemma3-270m.sh prints to run the Gemma 3 270M tests")
        }
        try await check(modelPath: try ModelFixtures.convertedPath("gemma3-270m", .q8, checkpointPath: gguf), context: 256)
    }

    func check(modelPath: String, context: Int?) async throws {
        let engine = try GemmaEngine(model: try GemmaModel.load(path: modelPath),
                                     options: GemmaEngine.Options(contextLength: context))
        let session = try engine.makeSession()
        let contextFlags = context.map { ["--ctx", "\($0)"] } ?? []
        let prompt = "Write about a person: their name and age."
        for (flags, format) in Self.formats {
            let options = GenerationOptions(maxTokens: 40, sampling: Self.sampling, stopSequences: ["\n\n\n"],
                                            responseFormat: format)
            // run: the prompt with <bos>, the JSON report's ids.
            let o = try GemmaTinyCLI.run(["run", "-m", modelPath, "-p", prompt, "-n", "40", "--stop", "\n\n\n", "--json"]
                                         + contextFlags + Self.samplingFlags + flags)
            XCTAssertEqual(o.status, 0, o.stderr)
            let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(o.stdout.utf8)) as? [String: Any])
            let completion = try await session.completion(prompt: prompt, options: options)
            XCTAssertEqual(report["generated_ids"] as? [Int], completion.summary.generatedTokens, "run \(flags)")
            XCTAssertEqual(report["text"] as? String, completion.text, "run \(flags)")
            XCTAssertEqual(report["stop_reason"] as? String, completion.summary.stopReason.rawValue, "run \(flags)")
            XCTAssertEqual(report["seed"] as? UInt64, completion.summary.seed)
            XCTAssertFalse(completion.summary.generatedTokens.isEmpty)

            // chat: one user turn from stdin, the reply's text (the command prints no ids).
            // Only free text: `chat` has no response-format flags.
            guard format == .text else { continue }
            let chatOptions = GenerationOptions(maxTokens: 40, sampling: Self.sampling)
            let c = try GemmaTinyCLI.run(["chat", "-m", modelPath, "-n", "40"] + contextFlags + Self.samplingFlags,
                                         stdin: prompt + "\n")
            XCTAssertEqual(c.status, 0, c.stderr)
            let reply = try await session.chatCompletion(messages: [.user(prompt)], options: chatOptions)
            XCTAssertEqual(c.stdout, reply.text + "\n", "chat")
        }
    }
}
