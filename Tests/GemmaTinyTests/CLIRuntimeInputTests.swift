import Foundation
@testable import GemmaTiny
import XCTest

/// Awkward runtime input through the built `gemma-tiny`, one test per row of
/// docs/RELIABILITY.md ("Runtime input"): each is either handled as documented or refused with
/// one `error:` line and a non-zero exit.
final class CLIRuntimeInputTests: XCTestCase {
    var golden: Golden!
    var modelPath: String!
    var model: GemmaModel!
    var tokenizer: Tokenizer!

    override func setUpWithError() throws {
        golden = try Golden.load("tiny-gemma")
        modelPath = try ModelFixtures.convertedPath("tiny-gemma", .bf16)
        model = try ModelFixtures.model("tiny-gemma", .bf16)
        tokenizer = try ModelFixtures.tokenizer(for: model)
        _ = try GemmaTinyCLI.binary()
    }

    var maximumContext: Int { model.config.maxPositionEmbeddings }

    func run(_ arguments: [String], stdin: String? = nil) throws -> GemmaTinyCLI.Output {
        try GemmaTinyCLI.run(["run", "-m", modelPath] + arguments, stdin: stdin)
    }

    func json(_ o: GemmaTinyCLI.Output, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        XCTAssertEqual(o.status, 0, o.stderr, file: file, line: line)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(o.stdout.utf8)) as? [String: Any],
                             o.stdout, file: file, line: line)
    }

    func writeFile(_ bytes: [UInt8]) throws -> String {
        let path = ModelFixtures.tempDir + "/prompt-\(UUID().uuidString).txt"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// A text of more than `tokens` tokens.
    func text(longerThan tokens: Int) -> String {
        var text = ""
        while tokenizer.encode(text).count <= tokens { text += "Permission is hereby granted, free of charge. " }
        return text
    }

    /// Invalid UTF-8 in a prompt file is decoded with U+FFFD for each maximal invalid sequence
    /// (a stray byte, a truncated character, a lone continuation byte), without complaint.
    func testCLIInvalidUTF8PromptFileIsDecodedWithReplacementCharacters() throws {
        // Appended piece by piece: Swift 6.0.3 gives up type-checking this as one `+` chain.
        var bytes = [UInt8]("The cat ".utf8)
        bytes.append(0xFF)
        bytes.append(contentsOf: " sat on the ".utf8)
        bytes.append(contentsOf: [0xE2, 0x82])
        bytes.append(contentsOf: " mat".utf8)
        bytes.append(0x80)
        let o = try run(["-f", try writeFile(bytes), "--temp", "0", "-n", "3", "--json"])
        let expected = [tokenizer.bosId] + tokenizer.encode("The cat \u{FFFD} sat on the \u{FFFD} mat\u{FFFD}")
        XCTAssertEqual(try json(o)["prompt_ids"] as? [Int], expected)
        XCTAssertNotEqual(expected, [tokenizer.bosId] + tokenizer.encode("The cat  sat on the  mat"),
                          "the replacement characters are tokens, not dropped")
        XCTAssertEqual(o.stderr, "")
    }

    /// An empty prompt, from -p, a file or stdin, generates from `<bos>` alone.
    func testCLIEmptyPromptGeneratesFromBos() throws {
        var options = GenerationOptions.greedy(maxTokens: 6)
        options.stopAtEndOfSequence = false
        // The command line's default cache (f16), not the Generator's (f32).
        let expected = try Generator(model: model, contextLength: 64, cacheType: .default)
            .generate(prompt: [tokenizer.bosId], options: options)
        let flags = ["--temp", "0", "-n", "6", "--ignore-eos", "--json"]
        for o in [try run(["-p", ""] + flags), try run(["-f", try writeFile([])] + flags), try run(flags, stdin: "")] {
            let reply = try json(o)
            XCTAssertEqual(reply["prompt_ids"] as? [Int], [tokenizer.bosId])
            XCTAssertEqual(reply["generated_ids"] as? [Int], expected.generatedTokens)
        }
        // Without <bos> there is nothing to start from.
        GemmaTinyCLI.assertOneLineError(try run(["-p", "", "--no-bos"]), contains: "the prompt is empty")
    }

    /// A prompt longer than the context is one error line that says what to do: a larger
    /// --ctx when there is room, otherwise that the model cannot take it.
    func testCLIPromptLongerThanContextIsOneLineError() throws {
        let short = try run(["-p", text(longerThan: 16), "--ctx", "16"])
        GemmaTinyCLI.assertOneLineError(short, contains: "longer than the context (16 tokens)")
        XCTAssertTrue(short.stderr.contains("a larger --ctx (up to \(maximumContext))"), short.stderr)
        XCTAssertEqual(short.stdout, "")

        let long = text(longerThan: maximumContext)
        let tokens = tokenizer.encode(long).count + 1
        let full = try run(["-p", long])
        GemmaTinyCLI.assertOneLineError(full, contains: "the prompt is \(tokens) tokens, longer than the context (\(maximumContext) tokens)")
        XCTAssertTrue(full.stderr.contains("the model's maximum is \(maximumContext)"), full.stderr)
        XCTAssertEqual(full.stdout, "")
    }

    /// A stop string made of the end of one token and the start of the next cuts the streamed
    /// text (and the JSON text) just before it.
    func testCLIStopStringSpanningTokensCutsTheText() throws {
        let p = golden.prompts.first { $0.name == "short" }!
        var decoder = tokenizer.makeStreamingDecoder()
        let pieces = p.greedyIds.map { decoder.append($0) }
        func usable(_ s: String) -> Bool { s.count >= 2 && !s.contains("\u{FFFD}") }
        let boundary = try XCTUnwrap((0..<(pieces.count - 1)).first { usable(pieces[$0]) && usable(pieces[$0 + 1]) })
        let stop = String(pieces[boundary].suffix(2)) + String(pieces[boundary + 1].prefix(2))
        let full = pieces.joined()
        let expected = String(pieces[...boundary].joined().dropLast(2))
        XCTAssertEqual(String(full[..<full.range(of: stop)!.lowerBound]), expected, "the stop string occurs first at the boundary")

        // f32 cache: compared with the transformers goldens token for token, which an f16 cache may flip at a near-tie.
        let streamed = try run(["-p", p.text, "--temp", "0", "-n", "24", "--ignore-eos", "--stop=\(stop)", "--cache-type", "f32"])
        XCTAssertEqual(streamed.status, 0, streamed.stderr)
        XCTAssertEqual(streamed.stdout, expected + "\n")
        let reply = try json(try run(["-p", p.text, "--temp", "0", "-n", "24", "--ignore-eos", "--stop=\(stop)", "--json",
                                      "--cache-type", "f32"]))
        XCTAssertEqual(reply["text"] as? String, expected)
        XCTAssertEqual(reply["stop_reason"] as? String, "stop_sequence")
        XCTAssertEqual(reply["generated_ids"] as? [Int], Array(p.greedyIds.prefix(boundary + 2)))
    }

    /// --ctx beyond the model's positions is capped at them (a note with --verbose).
    func testCLIContextLargerThanModelIsCapped() throws {
        let o = try run(["-p", "The cat", "--ctx", "100000", "--temp", "0", "-n", "2", "--verbose"])
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertTrue(o.stderr.contains("--ctx 100000 is more than the model's \(maximumContext) positions; using \(maximumContext)"), o.stderr)
        XCTAssertTrue(o.stderr.contains("context: \(maximumContext)"), o.stderr)
        let quiet = try run(["-p", "The cat", "--ctx", "100000", "--temp", "0", "-n", "2"])
        XCTAssertEqual(quiet.status, 0, quiet.stderr)
        XCTAssertEqual(quiet.stderr, "")
        // The cap is what is used: a prompt over the model's maximum is still refused.
        GemmaTinyCLI.assertOneLineError(try run(["-p", text(longerThan: maximumContext), "--ctx", "100000"]),
                                        contains: "longer than the context (\(maximumContext) tokens)")
    }

    /// --threads 0 and --threads 10000 are one error line for every command that runs the
    /// model, before the model is loaded (`serve`: gemma-tiny-serve, in server/'s tests).
    func testCLIThreadCountsOutOfRangeAreOneLineErrors() throws {
        let prompt = try writeFile(Array("The cat".utf8))
        for command in [["run", "-p", "hi"], ["chat"], ["perplexity", "-f", prompt]] {
            let base = [command[0], "-m", modelPath] + command.dropFirst()
            GemmaTinyCLI.assertOneLineError(try GemmaTinyCLI.run(base + ["--threads", "0"]), contains: "--threads must be at least 1, got 0")
            GemmaTinyCLI.assertOneLineError(try GemmaTinyCLI.run(base + ["-t", "10000"]),
                                            contains: "--threads must be at most \(WorkerPool.maximumThreadCount), got 10000")
        }
        GemmaTinyCLI.assertOneLineError(try GemmaTinyCLI.run(["bench", "-m", modelPath, "-t", "0"]), contains: "-t takes thread counts from 1 to")
        GemmaTinyCLI.assertOneLineError(try GemmaTinyCLI.run(["bench", "-m", modelPath, "-t", "1,10000"]), contains: "-t takes thread counts from 1 to")
    }
}
