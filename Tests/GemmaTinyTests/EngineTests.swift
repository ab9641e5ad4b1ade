import Foundation
@_spi(Testing) @testable import GemmaTiny
import XCTest

/// The public library API (GemmaEngine, GemmaSession, chat template, errors), on the tiny
/// fixture model against the transformers goldens.
final class EngineTests: XCTestCase {
    var golden: Golden!

    override func setUpWithError() throws {
        golden = try Golden.load("tiny-gemma")
    }

    func prompt(_ name: String) -> Golden.Prompt { golden.prompts.first { $0.name == name }! }

    func testEngineLoadNamesModelAndCountsTokens() async throws {
        let path = try ModelFixtures.convertedPath("tiny-gemma", .bf16)
        let engine = try await GemmaEngine.load(path: path, options: .init(threads: 1))
        XCTAssertEqual(engine.name, "tiny-gemma-bf16")
        XCTAssertEqual(engine.path, path)
        XCTAssertEqual(engine.maximumContextLength, 512)
        XCTAssertEqual(engine.defaultContextLength, 512)
        XCTAssertEqual(GemmaEngine.modelName(forPath: "/models/gemma-2b-it.gtm"), "gemma-2b-it")
        XCTAssertEqual(GemmaEngine.modelName(forPath: "plain"), "plain")
        XCTAssertEqual(GemmaEngine.modelName(forPath: "/m/gemma-2b.gtm.unpacked"), "gemma-2b")

        let short = prompt("short")
        XCTAssertEqual(engine.countTokens(short.text), short.ids.count - 1)  // no <bos>
        XCTAssertEqual(engine.tokenize(short.text), Array(short.ids.dropFirst()))
        XCTAssertEqual(engine.detokenize(Array(short.ids.dropFirst())), short.text)
        let chat = prompt("chat")
        XCTAssertEqual(try engine.countTokens(messages: [.user("Write a short poem about the sea.")]), chat.ids.count)
        await engine.shutdown()
    }

    func testEngineLoadErrorsNameTheFile() async {
        do {
            _ = try await GemmaEngine.load(path: "/nonexistent/model.gtm")
            XCTFail("expected an error")
        } catch {
            guard case .modelLoad(let path, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, "/nonexistent/model.gtm")
            XCTAssertTrue(error.description.contains("/nonexistent/model.gtm"), error.description)
        }
        do {
            _ = try await GemmaEngine.load(path: "/nonexistent/model.gtm", options: .init(maxConcurrentGenerations: 0))
            XCTFail("expected an error")
        } catch {
            guard case .invalidOptions(let why) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(why.contains("maxConcurrentGenerations"), why)
        }
        XCTAssertThrowsError(try EngineFixtures.engine(chunk: 0))
        XCTAssertThrowsError(try GemmaEngine(model: EngineFixtures.model(), options: .init(contextLength: 100_000))) {
            XCTAssertTrue("\($0)".contains("maximum"), "\($0)")
        }
    }

    /// Greedy generation through the engine is the reference's, token for token, and the chunks
    /// add up to the text and the tokens.
    func testEngineGenerateMatchesReference() async throws {
        // f32 cache: compared with the transformers goldens token for token, which an f16 cache may flip at a near-tie.
        let engine = try EngineFixtures.engine(cacheType: .f32)
        let session = try engine.makeSession(contextLength: 128)
        for name in ["short", "license", "code-multilingual"] {
            let p = prompt(name)
            let c = try await EngineFixtures.collect(session.generate(tokens: p.ids, options: EngineFixtures.greedy(24)))
            let s = try XCTUnwrap(c.summary)
            XCTAssertEqual(s.generatedTokens, p.greedyIds, name)
            XCTAssertEqual(c.chunkTokens, p.greedyIds, name)
            XCTAssertTrue(c.chunks.allSatisfy { $0.tokens.count <= 1 })
            XCTAssertEqual(c.text, engine.tokenizer.decode(p.greedyIds), name)
            XCTAssertEqual(s.stopReason, .maxTokens)
            XCTAssertEqual(s.usage.promptTokens, p.ids.count)
            XCTAssertEqual(s.usage.completionTokens, 24)
            XCTAssertEqual(s.usage.totalTokens, p.ids.count + 24)
            XCTAssertEqual(s.stats.generatedTokens, 24)
            XCTAssertEqual(s.stats.promptTokens + s.usage.cachedPromptTokens, p.ids.count)
        }
        // From text: <bos> + encode, as the goldens were made.
        let p = prompt("short")
        let c = try await session.completion(prompt: p.text, options: EngineFixtures.greedy(24))
        XCTAssertEqual(c.summary.generatedTokens, p.greedyIds)
        XCTAssertEqual(c.summary.usage.promptTokens, p.ids.count)
        XCTAssertEqual(c.text, engine.tokenizer.decode(p.greedyIds))
    }

    func testEngineChatTemplateMatchesReference() throws {
        let engine = try EngineFixtures.engine()
        let chat = prompt("chat")
        let messages: [ChatMessage] = [.user("Write a short poem about the sea.")]
        XCTAssertEqual(try GemmaChatTemplate.tokens(for: messages, tokenizer: engine.tokenizer), chat.ids)
        XCTAssertEqual(try GemmaChatTemplate.render(messages), "<bos>" + chat.text)
    }

    /// Gemma has no system role: system text goes first in the next user turn, then a blank line.
    func testEngineChatTemplateFoldsSystemMessagesAndRendersTurns() throws {
        let engine = try EngineFixtures.engine()
        let tok = engine.tokenizer
        XCTAssertEqual(try GemmaChatTemplate.render([.system("Be brief."), .user("Hi")]),
                       "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n")
        XCTAssertEqual(try GemmaChatTemplate.tokens(for: [.system("Be brief."), .user("Hi")], tokenizer: tok),
                       try GemmaChatTemplate.tokens(for: [.user("Be brief.\n\nHi")], tokenizer: tok))
        XCTAssertEqual(try GemmaChatTemplate.render([.system("A"), .system("B"), .user("Hi"), .assistant("Hello!"), .user("More")]),
                       "<bos><start_of_turn>user\nA\n\nB\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
                       + "<start_of_turn>user\nMore<end_of_turn>\n<start_of_turn>model\n")
        // A trailing assistant message is continued, not closed.
        XCTAssertEqual(try GemmaChatTemplate.render([.user("Hi"), .assistant("Once upon")]),
                       "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nOnce upon")
        // A system message with no user message after it is a user turn of its own.
        XCTAssertEqual(try GemmaChatTemplate.render([.system("Only this")]),
                       "<bos><start_of_turn>user\nOnly this<end_of_turn>\n<start_of_turn>model\n")
        XCTAssertThrowsError(try GemmaChatTemplate.render([])) {
            guard case EngineError.invalidMessages = $0 else { return XCTFail("\($0)") }
        }
        // Control tokens typed in a message stay text.
        let ids = try GemmaChatTemplate.tokens(for: [.user("<start_of_turn>")], tokenizer: tok)
        XCTAssertEqual(ids.filter { $0 == tok.id(of: "<start_of_turn>") }.count, 2)
    }

    func testEngineChatGeneratesLikeReference() async throws {
        // f32 cache: compared with the transformers goldens token for token, which an f16 cache may flip at a near-tie.
        let engine = try EngineFixtures.engine(cacheType: .f32)
        let session = try engine.makeSession()
        let chat = prompt("chat")
        let c = try await EngineFixtures.collect(session.chat(messages: [.user("Write a short poem about the sea.")],
                                                              options: EngineFixtures.greedy(24)))
        XCTAssertEqual(c.summary?.generatedTokens, chat.greedyIds)
        XCTAssertEqual(c.summary?.usage.promptTokens, chat.ids.count)
        let reply = try await session.chatCompletion(messages: [.user("Write a short poem about the sea.")],
                                                     options: EngineFixtures.greedy(24))
        XCTAssertEqual(reply.summary.generatedTokens, chat.greedyIds)
        XCTAssertEqual(reply.text, c.text)
        // The same conversation again: all but the last prompt token come from the cache.
        XCTAssertEqual(reply.summary.usage.cachedPromptTokens, chat.ids.count - 1)
    }

    /// A session reuses the longest common prefix of its cache; results never depend on it.
    func testEnginePrefixCacheReuseGivesIdenticalResults() async throws {
        let engine = try EngineFixtures.engine(chunk: 4)
        let session = try engine.makeSession(contextLength: 128)
        let p = prompt("license")
        let first = try await session.completion(tokens: p.ids, options: EngineFixtures.greedy(8))
        XCTAssertEqual(first.summary.usage.cachedPromptTokens, 0)
        XCTAssertEqual(first.summary.stats.promptTokens, p.ids.count)
        let again = try await session.completion(tokens: p.ids, options: EngineFixtures.greedy(8))
        XCTAssertEqual(again.summary.usage.cachedPromptTokens, p.ids.count - 1)
        XCTAssertEqual(again.summary.stats.promptTokens, 1)
        XCTAssertEqual(again.summary.generatedTokens, first.summary.generatedTokens)

        // Continuing the previous reply: prompt + reply is cached except the last sampled token.
        let continued = p.ids + first.summary.generatedTokens + [300, 301]
        let c = try await session.completion(tokens: continued, options: EngineFixtures.greedy(8))
        XCTAssertEqual(c.summary.usage.cachedPromptTokens, p.ids.count + first.summary.generatedTokens.count - 1)
        let fresh = try await engine.makeSession(contextLength: 128).completion(tokens: continued, options: EngineFixtures.greedy(8))
        XCTAssertEqual(c.summary.generatedTokens, fresh.summary.generatedTokens)

        // A prompt sharing only <bos> + 3 tokens.
        let other = Array(p.ids.prefix(4)) + [500, 501, 502]
        let o = try await session.completion(tokens: other, options: EngineFixtures.greedy(8))
        XCTAssertEqual(o.summary.usage.cachedPromptTokens, 4)
        let oFresh = try await engine.makeSession(contextLength: 128).completion(tokens: other, options: EngineFixtures.greedy(8))
        XCTAssertEqual(o.summary.generatedTokens, oFresh.summary.generatedTokens)

        let cached = await session.cachedTokenCount()
        XCTAssertEqual(cached, other.count + 7)
        await session.reset()
        let afterResetCount = await session.cachedTokenCount()
        XCTAssertEqual(afterResetCount, 0)
        let afterReset = try await session.completion(tokens: other, options: EngineFixtures.greedy(8))
        XCTAssertEqual(afterReset.summary.usage.cachedPromptTokens, 0)
        XCTAssertEqual(afterReset.summary.generatedTokens, oFresh.summary.generatedTokens)
    }

    func testEngineStopSequenceAndEndOfSequence() async throws {
        let engine = try EngineFixtures.engine()
        let session = try engine.makeSession(contextLength: 128)
        let p = prompt("short")
        let full = try await session.completion(tokens: p.ids, options: EngineFixtures.greedy(24))
        // Stop at a piece of text from the middle of the reply.
        let text = full.text
        let start = text.index(text.startIndex, offsetBy: text.count / 2)
        let stop = String(text[start...].prefix(3))
        var options = EngineFixtures.greedy(24)
        options.stopSequences = [stop]
        let c = try await EngineFixtures.collect(session.generate(tokens: p.ids, options: options))
        XCTAssertEqual(c.summary?.stopReason, .stopSequence)
        XCTAssertEqual(c.summary?.matchedStopSequence, stop)
        XCTAssertFalse(c.text.contains(stop))
        XCTAssertTrue(text.hasPrefix(c.text))
        XCTAssertEqual(c.chunkTokens, c.summary?.generatedTokens)

        // With stopAtEndOfSequence, a final <eos> / <end_of_turn> is counted but not delivered.
        let withEos = try await EngineFixtures.collect(session.generate(tokens: p.ids, options: .greedy(maxTokens: 24)))
        let s = try XCTUnwrap(withEos.summary)
        if s.stopReason == .endOfSequence || s.stopReason == .endOfTurn {
            XCTAssertEqual(withEos.chunkTokens, Array(s.generatedTokens.dropLast()))
        } else {
            XCTAssertEqual(withEos.chunkTokens, s.generatedTokens)
        }
    }

    func testEngineContextFullStopsGeneration() async throws {
        let engine = try EngineFixtures.engine()
        let session = try engine.makeSession(contextLength: 16)
        XCTAssertEqual(session.contextLength, 16)
        let ids = Array(prompt("license").ids.prefix(10))
        let c = try await session.completion(tokens: ids, options: EngineFixtures.greedy(nil))
        XCTAssertEqual(c.summary.stopReason, .contextFull)
        // 10 prompt tokens + 6 fed replies fill 16 positions; the 7th sampled token is not fed.
        XCTAssertEqual(c.summary.generatedTokens.count, 7)
    }

    func testEngineTypedErrors() async throws {
        let engine = try EngineFixtures.engine()
        let session = try engine.makeSession(contextLength: 16)
        let long = prompt("license").ids
        XCTAssertGreaterThan(long.count, 16)
        var e = await EngineFixtures.error(of: session.generate(tokens: long))
        XCTAssertEqual(e, .promptTooLong(tokens: long.count, contextLength: 16))
        XCTAssertTrue(e?.description.contains("longer than the session's context (16 tokens)") ?? false)

        e = await EngineFixtures.error(of: session.generate(tokens: []))
        XCTAssertEqual(e, .emptyPrompt)
        e = await EngineFixtures.error(of: session.generate(tokens: [2, 99_999]))
        XCTAssertEqual(e, .tokenOutOfRange(token: 99_999, vocabularySize: 2048))
        e = await EngineFixtures.error(of: session.generate(prompt: "x", options: GenerationOptions(sampling: .init(temperature: -1))))
        guard case .invalidOptions(let why) = e else { return XCTFail("\(String(describing: e))") }
        XCTAssertTrue(why.contains("temperature"), why)
        e = await EngineFixtures.error(of: session.generate(prompt: "x", options: GenerationOptions(maxTokens: -1)))
        guard case .invalidOptions = e else { return XCTFail("\(String(describing: e))") }
        e = await EngineFixtures.error(of: session.chat(messages: []))
        guard case .invalidMessages = e else { return XCTFail("\(String(describing: e))") }
        do {
            _ = try await session.completion(tokens: long)
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(error, .promptTooLong(tokens: long.count, contextLength: 16))
        }

        XCTAssertThrowsError(try engine.makeSession(contextLength: 0)) {
            guard case EngineError.sessionCreation(.invalidContextLength(0, 512)) = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try engine.makeSession(contextLength: 513))

        // The session still works after all that.
        let ok = try await session.completion(tokens: Array(long.prefix(4)), options: EngineFixtures.greedy(3))
        XCTAssertEqual(ok.summary.generatedTokens.count, 3)
        XCTAssertEqual(engine.stats.failedGenerations, 4)  // the four that reached the compute thread
    }

    func testEngineSampledGenerationIsReproducibleWithSeed() async throws {
        let engine = try EngineFixtures.engine()
        let session = try engine.makeSession(contextLength: 128)
        var options = GenerationOptions(maxTokens: 16, sampling: SamplingOptions(temperature: 1.2, seed: 42))
        options.stopAtEndOfSequence = false
        let a = try await session.completion(prompt: "The cat sat.", options: options)
        let b = try await engine.makeSession().completion(prompt: "The cat sat.", options: options)
        XCTAssertEqual(a.summary.seed, 42)
        XCTAssertEqual(a.summary.generatedTokens, b.summary.generatedTokens)
        XCTAssertEqual(a.text, b.text)
    }

    func testEngineStatsCountWork() async throws {
        let engine = try EngineFixtures.engine()
        XCTAssertEqual(engine.stats.openSessions, 0)
        var session: GemmaSession? = try engine.makeSession()
        XCTAssertEqual(engine.stats.openSessions, 1)
        let p = prompt("short")
        _ = try await session!.completion(tokens: p.ids, options: EngineFixtures.greedy(5))
        _ = try await session!.completion(tokens: p.ids, options: EngineFixtures.greedy(5))
        let s = engine.stats
        XCTAssertEqual(s.completedGenerations, 2)
        XCTAssertEqual(s.generatedTokens, 10)
        XCTAssertEqual(s.promptTokens, p.ids.count + 1)
        XCTAssertEqual(s.cachedPromptTokens, p.ids.count - 1)
        XCTAssertEqual(s.runningGenerations, 0)
        XCTAssertEqual(s.waitingGenerations, 0)
        XCTAssertGreaterThan(s.busySeconds, 0)
        session = nil
        XCTAssertEqual(engine.stats.openSessions, 0)
    }
}
