import Foundation
import GemmaTiny
import XCTest

/// The code of README's "Embedding and serving" section and of the DocC article (GemmaTiny.docc/Embedding.md), run against the
/// tiny fixture model, so the documentation compiles and works. (Plain `import GemmaTiny`: only
/// the public API.)
final class EngineDocExampleTests: XCTestCase {
    func testEngineReadmeExample() async throws {
        let path = try ModelFixtures.convertedPath("tiny-gemma", .bf16)
        var printed = ""
        func print(_ items: Any..., terminator: String = "\n") { printed += items.map { "\($0)" }.joined() + terminator }

        // --- README ---
        let engine = try await GemmaEngine.load(path: path)
        let session = try engine.makeSession()
        let messages: [ChatMessage] = [.system("Answer in one sentence."), .user("Why is the sky blue?")]
        for try await event in session.chat(messages: messages, options: GenerationOptions(maxTokens: 128)) {
            switch event {
            case .chunk(let chunk): print(chunk.text, terminator: "")        // text + chunk.tokens
            case .finished(let summary): print("\n[\(summary.stopReason.rawValue), \(summary.usage.totalTokens) tokens]")
            }
        }
        // ---
        XCTAssertTrue(printed.hasSuffix(" tokens]\n"), printed)
        await engine.shutdown()
    }

    func testEngineLibraryGuideExample() async throws {
        let path = try ModelFixtures.convertedPath("tiny-gemma", .bf16)
        var printed = ""
        func print(_ items: Any..., terminator: String = "\n") { printed += items.map { "\($0)" }.joined() + terminator }

        // --- the DocC article Sources/GemmaTiny/GemmaTiny.docc/Embedding.md, "A complete example" ---
        let engine = try await GemmaEngine.load(
            path: path,
            options: .init(threads: 0,                    // 0 = one per core
                           contextLength: 2048 / 4,       // (the fixture's maximum is 512)
                           maxConcurrentGenerations: 2))  // interleaved at once

        let session = try engine.makeSession()
        var messages: [ChatMessage] = [
            .system("You are a terse assistant on a kitchen device."),
            .user("How long do I boil an egg?"),
        ]
        print("prompt: \(try engine.countTokens(messages: messages)) tokens")

        let options = GenerationOptions(maxTokens: 200,
                                        sampling: SamplingOptions(temperature: 0.7, seed: 42),
                                        stopSequences: ["\n\n\n"])
        var reply = ""
        for try await event in session.chat(messages: messages, options: options) {
            switch event {
            case .chunk(let chunk):
                reply += chunk.text
                print(chunk.text, terminator: "")
            case .finished(let summary):
                print("\n[\(summary.stopReason.rawValue): \(summary.usage.completionTokens) tokens, "
                      + "\(summary.usage.cachedPromptTokens) prompt tokens from the cache, "
                      + String(format: "%.1f tokens/s]", summary.stats.generationTokensPerSecond))
            }
        }

        messages.append(.assistant(reply))
        messages.append(.user("And for a soft one?"))
        let next = try await session.chatCompletion(messages: messages, options: options)
        print(next.text)

        await engine.shutdown()
        // ---
        XCTAssertTrue(printed.hasPrefix("prompt: "), printed)
        XCTAssertTrue(printed.contains("prompt tokens from the cache"), printed)
        // The second turn reused the first turn's cache.
        XCTAssertGreaterThan(next.summary.usage.cachedPromptTokens, 20)
    }
}
