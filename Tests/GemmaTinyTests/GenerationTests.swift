import Foundation
@testable import GemmaTiny
import XCTest

/// The generation loop and chat, on the tiny fixture model (bf16 = the reference's weights).
final class GenerationTests: XCTestCase {
    var golden: Golden!
    var model: GemmaModel!

    override func setUpWithError() throws {
        golden = try Golden.load("tiny-gemma")
        model = try ModelFixtures.model("tiny-gemma", .bf16)
    }

    func prompt(_ name: String) -> Golden.Prompt { golden.prompts.first { $0.name == name }! }

    func generator(_ model: GemmaModel? = nil, context: Int = 128) throws -> Generator {
        try Generator(model: model ?? self.model, contextLength: context)
    }

    /// A copy of the bf16 fixture with edited tokenizer metadata / vocabulary.
    func modifiedModel(_ name: String, metadata: (inout ModelMetadata) -> Void = { _ in },
                       vocabulary: (inout TokenizerVocabulary) -> Void = { _ in }) throws -> GemmaModel {
        let path = ModelFixtures.tempDir + "/\(name)-\(UUID().uuidString).gtm"
        try ModelFileRewriter.rewrite(try ModelFixtures.convertedPath("tiny-gemma", .bf16), to: path,
                                      metadata: metadata, vocabulary: vocabulary)
        return try GemmaModel.load(path: path)
    }

    func testGenerationGreedyIsDeterministicAndMatchesReference() throws {
        let p = prompt("short")
        let g = try generator()
        var options = GenerationOptions.greedy(maxTokens: 24)
        options.stopAtEndOfSequence = false
        var streamed = ""
        let a = try g.generate(prompt: p.ids, options: options, onText: { streamed += $0 })
        XCTAssertEqual(a.generatedTokens, p.greedyIds)
        XCTAssertEqual(a.stopReason, .maxTokens)
        XCTAssertEqual(streamed, a.text)
        XCTAssertEqual(a.text, g.tokenizer.decode(p.greedyIds))
        XCTAssertEqual(a.promptTokens, p.ids)
        XCTAssertEqual(a.stats.promptTokens, p.ids.count)
        XCTAssertEqual(a.stats.generatedTokens, 24)
        XCTAssertGreaterThan(a.stats.generationTokensPerSecond, 0)
        XCTAssertGreaterThan(a.stats.promptTokensPerSecond, 0)
        // The last token is sampled but not fed.
        XCTAssertEqual(g.history, p.ids + p.greedyIds.dropLast())
        XCTAssertEqual(g.pendingToken, p.greedyIds.last)

        g.reset()
        let b = try g.generate(prompt: p.ids, options: options)
        XCTAssertEqual(b.generatedTokens, a.generatedTokens)
        let fresh = try generator(context: 64).generate(prompt: p.ids, options: options)
        XCTAssertEqual(fresh.generatedTokens, a.generatedTokens)
    }

    /// Text from a prompt string: <bos> + encode, as the golden prompts were built.
    func testGenerationEncodesPromptLikeReference() throws {
        let g = try generator()
        for p in golden.prompts {
            XCTAssertEqual(g.encodePrompt(p.text, parseSpecialTokens: p.chat), p.ids, p.name)
        }
        let r = try g.generate(text: prompt("license").text, options: .greedy(maxTokens: 3))
        XCTAssertEqual(r.promptTokens, prompt("license").ids)
        XCTAssertEqual(r.generatedTokens, Array(prompt("license").greedyIds.prefix(3)))
    }

    func testGenerationSeedDeterminism() throws {
        let p = prompt("license")
        func run(_ seed: UInt64) throws -> GenerationResult {
            let g = try generator()
            let sampling = SamplingOptions(temperature: 1.0, topK: 0, topP: 1, minP: 0, seed: seed)
            return try g.generate(prompt: p.ids, options: GenerationOptions(maxTokens: 16, sampling: sampling, stopAtEndOfSequence: false))
        }
        let a = try run(1234), b = try run(1234)
        XCTAssertEqual(a.generatedTokens, b.generatedTokens)
        XCTAssertEqual(a.text, b.text)
        XCTAssertEqual(a.seed, 1234)
        let others = try (1...4).map { try run(UInt64($0)).generatedTokens }
        XCTAssertTrue(others.contains { $0 != a.generatedTokens }, "different seeds should give different samples")
        XCTAssertNotEqual(a.generatedTokens, p.greedyIds.prefix(16).map { $0 }, "temperature 1 should not be greedy here")
    }

    func testGenerationMaxTokens() throws {
        let p = prompt("short")
        let g = try generator()
        let r = try g.generate(prompt: p.ids, options: .greedy(maxTokens: 5))
        XCTAssertEqual(r.generatedTokens, Array(p.greedyIds.prefix(5)))
        XCTAssertEqual(r.stopReason, .maxTokens)
        g.reset()
        let none = try g.generate(prompt: p.ids, options: .greedy(maxTokens: 0))
        XCTAssertEqual(none.generatedTokens, [])
        XCTAssertEqual(none.text, "")
        XCTAssertEqual(none.stopReason, .maxTokens)
        XCTAssertThrowsError(try g.generate(prompt: p.ids, options: .greedy(maxTokens: -1)))
    }

    /// A stop string made of the end of one token and the start of the next.
    func testGenerationStopStringSpanningTokens() throws {
        let p = prompt("short")
        let g = try generator()
        var decoder = g.tokenizer.makeStreamingDecoder()
        let pieces = p.greedyIds.map { decoder.append($0) }
        let full = pieces.joined()
        // First boundary where both sides have text.
        func usable(_ s: String) -> Bool { !s.isEmpty && !s.contains("\u{FFFD}") }
        var boundary: Int?
        for j in 0..<(pieces.count - 1) where usable(pieces[j]) && usable(pieces[j + 1]) {
            boundary = j
            break
        }
        guard let i = boundary else { return XCTFail("no boundary") }
        let stop = String(pieces[i].suffix(1)) + String(pieces[i + 1].prefix(2))
        let expected = String(full[..<full.range(of: stop)!.lowerBound])
        var streamed = ""
        var options = GenerationOptions.greedy(maxTokens: 24)
        options.stopSequences = ["never-matches", stop]
        options.stopAtEndOfSequence = false
        let r = try g.generate(prompt: p.ids, options: options, onText: { streamed += $0 })
        XCTAssertEqual(r.stopReason, .stopSequence)
        XCTAssertEqual(r.matchedStopSequence, stop)
        XCTAssertEqual(r.text, expected)
        XCTAssertEqual(streamed, expected)
        XCTAssertLessThanOrEqual(r.generatedTokens.count, i + 2)
        XCTAssertEqual(r.generatedTokens, Array(p.greedyIds.prefix(r.generatedTokens.count)))
        XCTAssertFalse(streamed.contains(stop))
    }

    /// <eos> ends generation (the fixture's tokenizer metadata is edited so that the reference's
    /// third greedy token is <eos>); its text is not emitted.
    func testGenerationStopsAtEos() throws {
        let p = prompt("short")
        let eos = p.greedyIds[2]
        XCTAssertFalse(p.greedyIds.prefix(2).contains(eos))
        let m = try modifiedModel("eos", metadata: { $0.tokenizer.eosId = eos })
        let g = try generator(m)
        XCTAssertEqual(g.eosId, eos)
        let r = try g.generate(prompt: p.ids, options: .greedy(maxTokens: 24))
        XCTAssertEqual(r.stopReason, .endOfSequence)
        XCTAssertEqual(r.generatedTokens, Array(p.greedyIds.prefix(3)))
        XCTAssertEqual(r.text, g.tokenizer.decode(Array(p.greedyIds.prefix(2))))
        // With stopAtEndOfSequence off it keeps going.
        g.reset()
        var options = GenerationOptions.greedy(maxTokens: 6)
        options.stopAtEndOfSequence = false
        XCTAssertEqual(try g.generate(prompt: p.ids, options: options).generatedTokens, Array(p.greedyIds.prefix(6)))
    }

    /// <end_of_turn> (looked up by piece) ends generation.
    func testGenerationStopsAtEndOfTurn() throws {
        let p = prompt("short")
        let target = p.greedyIds[1]
        let m = try modifiedModel("eot", vocabulary: { v in
            let old = v.pieces.firstIndex(of: "<end_of_turn>")!
            v.pieces[old] = "<retired_end_of_turn>"
            v.pieces[target] = "<end_of_turn>"
            v.types[target] = .control
        })
        let g = try generator(m)
        XCTAssertEqual(g.endOfTurnId, target)
        let r = try g.generate(prompt: p.ids, options: .greedy(maxTokens: 24))
        XCTAssertEqual(r.stopReason, .endOfTurn)
        XCTAssertEqual(r.generatedTokens, Array(p.greedyIds.prefix(2)))
    }

    func testGenerationContextOverflowIsATypedError() throws {
        let p = prompt("license")  // 18 tokens
        let g = try generator(context: 10)
        XCTAssertThrowsError(try g.generate(prompt: p.ids, options: .greedy(maxTokens: 4))) { error in
            XCTAssertEqual(error as? GenerationError, .promptTooLong(tokens: 18, available: 10, contextLength: 10))
            XCTAssertTrue("\(error)".contains("longer than the context"))
        }
        XCTAssertEqual(g.history, [])
        XCTAssertEqual(g.session.position, 0)
        XCTAssertThrowsError(try g.generate(prompt: [], options: .greedy(maxTokens: 4))) {
            XCTAssertEqual($0 as? GenerationError, .emptyPrompt)
        }
        XCTAssertThrowsError(try g.generate(prompt: [2, 99999], options: .greedy(maxTokens: 4))) {
            XCTAssertEqual($0 as? GenerationError, .inference(.tokenOutOfRange(token: 99999, vocabularySize: 2048)))
        }
    }

    /// Generation stops cleanly when the KV cache is full.
    func testGenerationStopsAtContextLimit() throws {
        let p = prompt("short")  // 7 tokens
        let g = try generator(context: 10)
        var options = GenerationOptions.greedy(maxTokens: nil)
        options.stopAtEndOfSequence = false
        let r = try g.generate(prompt: p.ids, options: options)
        XCTAssertEqual(r.stopReason, .contextFull)
        // 3 generated tokens fill positions 7...9, a 4th is sampled from the last logits.
        XCTAssertEqual(r.generatedTokens, Array(p.greedyIds.prefix(4)))
        XCTAssertEqual(g.session.position, 10)
        XCTAssertEqual(g.pendingToken, p.greedyIds[3])
        XCTAssertThrowsError(try g.generate(prompt: [5], options: options)) { error in
            XCTAssertEqual(error as? GenerationError, .promptTooLong(tokens: 2, available: 0, contextLength: 10))
        }
        // A prompt that exactly fills the context still gives one token.
        let exact = try generator(context: 7)
        let one = try exact.generate(prompt: p.ids, options: options)
        XCTAssertEqual(one.generatedTokens, [p.greedyIds[0]])
        XCTAssertEqual(one.stopReason, .contextFull)
    }

    func testGenerationCancellation() throws {
        let p = prompt("short")
        let g = try generator()
        var polls = 0
        let r = try g.generate(prompt: p.ids, options: .greedy(maxTokens: 24), shouldStop: {
            polls += 1
            return polls > p.ids.count + 3  // 7 prompt polls, then 3 tokens
        })
        XCTAssertEqual(r.stopReason, .cancelled)
        XCTAssertEqual(r.generatedTokens, Array(p.greedyIds.prefix(3)))
    }

    /// Cancelling during prompt processing leaves the conversation as it was.
    func testGenerationCancelDuringPromptIsRolledBack() throws {
        let p = prompt("short")
        let g = try generator()
        let chat = try ChatSession(generator: g)
        let first = try chat.send("Hello", options: .greedy(maxTokens: 3))
        let (history, pending) = (g.history, g.pendingToken)
        var polls = 0
        let cancelled = try chat.send("Write a short poem about the sea.", options: .greedy(maxTokens: 3), shouldStop: {
            polls += 1
            return polls > 5
        })
        XCTAssertEqual(cancelled.stopReason, .cancelled)
        XCTAssertEqual(cancelled.generatedTokens, [])
        XCTAssertEqual(g.history, history)
        XCTAssertEqual(g.pendingToken, pending)
        XCTAssertEqual(g.session.position, history.count)
        XCTAssertEqual(chat.turnCount, 1)
        // The next turn continues as if the cancelled one never happened.
        let next = try chat.send("Thanks!", options: .greedy(maxTokens: 2))
        XCTAssertEqual(next.promptTokens.first, first.generatedTokens.last)

        // Plain generation: a cancel after part of a continuation prompt keeps the logits usable.
        g.reset()
        _ = try g.generate(prompt: p.ids, options: .greedy(maxTokens: 0))
        XCTAssertTrue(g.session.hasLogits)
        var n = 0
        _ = try g.generate(prompt: [10, 11, 12], options: .greedy(maxTokens: 2), shouldStop: { n += 1; return n > 2 })
        XCTAssertEqual(g.history.count + 1, p.ids.count)
        let resumed = try g.generate(prompt: [], options: .greedy(maxTokens: 2))
        XCTAssertEqual(resumed.generatedTokens, Array(p.greedyIds.prefix(2)))
    }

    /// The template ids of a two-turn chat, the KV cache kept between turns, and the reply's
    /// end handled as transformers' template writes it.
    func testGenerationChatTemplateTwoTurns() throws {
        let chatPrompt = prompt("chat")  // "<start_of_turn>user\nWrite a short poem about the sea.<end_of_turn>\n<start_of_turn>model\n"
        let g = try generator()
        let chat = try ChatSession(generator: g)
        let tok = g.tokenizer
        let sot = tok.id(of: "<start_of_turn>")!, eot = tok.id(of: "<end_of_turn>")!
        let first = try chat.send("Write a short poem about the sea.", options: .greedy(maxTokens: 3))
        XCTAssertEqual(first.promptTokens, chatPrompt.ids, "first turn = the reference's chat prompt")
        XCTAssertEqual(first.generatedTokens, Array(chatPrompt.greedyIds.prefix(3)))

        let second = try chat.send("Thanks!", options: .greedy(maxTokens: 2))
        let secondTurn = [eot] + tok.encode("\n") + [sot] + tok.encode("user\nThanks!") + [eot] + tok.encode("\n")
            + [sot] + tok.encode("model\n")
        // The cut-short reply's last token is fed first, then the turn: only new tokens are processed.
        XCTAssertEqual(second.promptTokens, [first.generatedTokens.last!] + secondTurn)
        let conversation = chatPrompt.ids + first.generatedTokens + secondTurn
        XCTAssertEqual(g.history, conversation + second.generatedTokens.dropLast())
        XCTAssertEqual(chat.turnCount, 2)

        // Same tokens as a fresh run over the whole conversation (the cache was reused correctly).
        let fresh = try generator()
        let replay = try fresh.generate(prompt: conversation, options: .greedy(maxTokens: 2))
        XCTAssertEqual(replay.generatedTokens, second.generatedTokens)

        chat.reset()
        XCTAssertEqual(g.history, [])
        XCTAssertEqual(try chat.send("Write a short poem about the sea.", options: .greedy(maxTokens: 1)).promptTokens, chatPrompt.ids)
    }

    /// A reply that ends with <eos> is closed with <end_of_turn>\n; the <eos> is not fed.
    func testGenerationChatReplyEndingWithEos() throws {
        let chatPrompt = prompt("chat")
        let eos = chatPrompt.greedyIds[2]
        let m = try modifiedModel("chat-eos", metadata: { $0.tokenizer.eosId = eos })
        let g = try generator(m)
        let chat = try ChatSession(generator: g)
        let first = try chat.send("Write a short poem about the sea.", options: .greedy(maxTokens: 10))
        XCTAssertEqual(first.stopReason, .endOfSequence)
        XCTAssertEqual(first.generatedTokens, Array(chatPrompt.greedyIds.prefix(3)))
        let second = try chat.send("More", options: .greedy(maxTokens: 1))
        XCTAssertEqual(second.promptTokens.first, chat.endOfTurnId)
        XCTAssertEqual(Array(g.history.prefix(chatPrompt.ids.count + 3)),
                       chatPrompt.ids + Array(chatPrompt.greedyIds.prefix(2)) + [chat.endOfTurnId])
    }

    func testGenerationChatContextFull() throws {
        let g = try generator(context: 40)
        let chat = try ChatSession(generator: g)
        _ = try chat.send("Write a short poem about the sea.", options: .greedy(maxTokens: 4))
        let before = g.history
        XCTAssertThrowsError(try chat.send("Another much longer message that cannot fit in what is left", options: .greedy(maxTokens: 4))) { error in
            guard case .promptTooLong = error as? GenerationError else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(g.history, before, "a turn that does not fit changes nothing")
    }

    func testGenerationInvalidSamplingOptions() throws {
        let g = try generator()
        var options = GenerationOptions(maxTokens: 2, sampling: SamplingOptions(temperature: -1))
        XCTAssertThrowsError(try g.generate(prompt: [2], options: options)) {
            guard case .invalidOptions = $0 as? GenerationError else { return XCTFail("\($0)") }
        }
        options.sampling = SamplingOptions(topP: 0)
        XCTAssertThrowsError(try g.generate(prompt: [2], options: options))
    }
}
