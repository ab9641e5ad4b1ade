import Foundation
@testable import GemmaTiny
import XCTest

/// The `gemma-tiny` commands, run as a process (`GemmaTinyCLI`).
final class CLITests: XCTestCase {
    typealias Output = GemmaTinyCLI.Output

    static func binary() throws -> String { try GemmaTinyCLI.binary() }

    func run(_ arguments: [String], stdin: String? = nil) throws -> Output { try GemmaTinyCLI.run(arguments, stdin: stdin) }

    var golden: Golden!
    var modelPath: String!

    override func setUpWithError() throws {
        golden = try Golden.load("tiny-gemma")
        modelPath = try ModelFixtures.convertedPath("tiny-gemma", .bf16)
        _ = try Self.binary()
    }

    func prompt(_ name: String) -> Golden.Prompt { golden.prompts.first { $0.name == name }! }

    func assertOneLineError(_ o: Output, contains text: String, file: StaticString = #filePath, line: UInt = #line) {
        GemmaTinyCLI.assertOneLineError(o, contains: text, file: file, line: line)
    }

    func testCLIRunStreamsGreedyText() throws {
        let p = prompt("short")
        // f32 cache: compared with the transformers goldens token for token, which an f16 cache may flip at a near-tie.
        let o = try run(["run", "-m", modelPath, "-p", p.text, "--temp", "0", "-n", "12", "--ignore-eos", "-t", "2", "--cache-type", "f32"])
        XCTAssertEqual(o.status, 0, o.stderr)
        let tokenizer = try ModelFixtures.tokenizer(for: try ModelFixtures.model("tiny-gemma", .bf16))
        let text = tokenizer.decode(Array(p.greedyIds.prefix(12)))
        XCTAssertEqual(o.stdout, text.hasSuffix("\n") ? text : text + "\n")
        XCTAssertEqual(o.stderr, "")
    }

    func testCLIRunJSON() throws {
        let p = prompt("license")
        // f32 cache: compared with the transformers goldens token for token, which an f16 cache may flip at a near-tie.
        let o = try run(["run", "-m", modelPath, "-p", p.text, "--temp", "0", "-n", "8", "--json", "--ignore-eos", "--verbose",
                         "--cache-type", "f32"])
        XCTAssertEqual(o.status, 0, o.stderr)
        let lines = o.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "one JSON object: \(o.stdout)")
        let json = try JSONSerialization.jsonObject(with: Data(o.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(json["prompt_ids"] as? [Int], p.ids)
        XCTAssertEqual(json["generated_ids"] as? [Int], Array(p.greedyIds.prefix(8)))
        XCTAssertEqual(json["stop_reason"] as? String, "max_tokens")
        XCTAssertNotNil(json["text"] as? String)
        let timing = json["timing"] as! [String: Any]
        for key in ["load_ms", "prompt_tokens_per_s", "gen_tokens_per_s"] {
            XCTAssertNotNil(timing[key] as? Double, key)
        }
        // --verbose: stats on stderr.
        XCTAssertTrue(o.stderr.contains("load time:"), o.stderr)
        XCTAssertTrue(o.stderr.contains("tokens/s"), o.stderr)
        XCTAssertTrue(o.stderr.contains("peak memory:"), o.stderr)
    }

    func testCLIRunPromptFromFileAndStdinAndStop() throws {
        let p = prompt("short")
        let file = ModelFixtures.tempDir + "/prompt-\(UUID().uuidString).txt"
        try p.text.write(toFile: file, atomically: false, encoding: .utf8)
        let a = try run(["run", "-m", modelPath, "-f", file, "--temp", "0", "-n", "6", "--json"])
        let b = try run(["run", "-m", modelPath, "--temp", "0", "-n", "6", "--json"], stdin: p.text)
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertEqual(b.status, 0, b.stderr)
        for o in [a, b] {
            let json = try JSONSerialization.jsonObject(with: Data(o.stdout.utf8)) as! [String: Any]
            XCTAssertEqual(json["prompt_ids"] as? [Int], p.ids)
        }
        // Seeded sampling is reproducible from the command line.
        let s1 = try run(["run", "-m", modelPath, "-p", p.text, "--temp", "1", "--seed", "42", "-n", "10", "--json"])
        let s2 = try run(["run", "-m", modelPath, "-p", p.text, "--temp", "1", "--seed", "42", "-n", "10", "--json"])
        let ids1 = (try JSONSerialization.jsonObject(with: Data(s1.stdout.utf8)) as! [String: Any])["generated_ids"] as? [Int]
        let ids2 = (try JSONSerialization.jsonObject(with: Data(s2.stdout.utf8)) as! [String: Any])["generated_ids"] as? [Int]
        XCTAssertNotNil(ids1)
        XCTAssertEqual(ids1, ids2)
        // --stop cuts the text.
        let tokenizer = try ModelFixtures.tokenizer(for: try ModelFixtures.model("tiny-gemma", .bf16))
        let full = tokenizer.decode(Array(p.greedyIds.prefix(12)))
        let stop = String(full.dropFirst(4).prefix(3))
        // f32 cache: compared with the transformers goldens token for token, which an f16 cache may flip at a near-tie.
        let c = try run(["run", "-m", modelPath, "-p", p.text, "--temp", "0", "-n", "12", "--stop", stop, "--cache-type", "f32"])
        XCTAssertEqual(c.status, 0, c.stderr)
        XCTAssertEqual(c.stdout, String(full[..<full.range(of: stop)!.lowerBound]) + "\n")
    }

    func testCLITokenize() throws {
        let p = prompt("short")
        let o = try run(["tokenize", "-m", modelPath, "-p", p.text])
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertEqual(o.stdout, "[" + p.ids.map(String.init).joined(separator: ", ") + "]\n")
        let pieces = try run(["tokenize", "-m", modelPath, "-p", p.text, "--pieces", "--no-bos"])
        XCTAssertEqual(pieces.status, 0)
        let lines = pieces.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, p.ids.count - 1)
        XCTAssertTrue(lines[0].hasSuffix("-> '\(try ModelFixtures.tokenizer(for: try ModelFixtures.model("tiny-gemma", .bf16)).piece(p.ids[1])!)'"), String(lines[0]))
        let chat = prompt("chat")
        let special = try run(["tokenize", "-m", modelPath, "--special"], stdin: chat.text)
        XCTAssertEqual(special.stdout, "[" + chat.ids.map(String.init).joined(separator: ", ") + "]\n")
        let plain = try run(["tokenize", "-m", modelPath, "-p", "<start_of_turn>"])
        XCTAssertFalse(plain.stdout.contains(", \(chat.ids[1]),"), "without --special control tokens stay text")
    }

    func testCLIPerplexity() throws {
        let text = String(repeating: "The cat sat on the mat. Permission is hereby granted, free of charge. ", count: 12)
        let file = ModelFixtures.tempDir + "/ppl-\(UUID().uuidString).txt"
        try text.write(toFile: file, atomically: false, encoding: .utf8)
        // The default cache (f16) and the exact one, each against a session with the same cache.
        for (flags, cacheType) in [([String](), KVCacheType.default), (["--cache-type", "f32"], .f32)] {
            try checkPerplexity(file: file, text: text, flags: flags, cacheType: cacheType)
        }

        let short = try run(["perplexity", "-m", modelPath, "-f", file, "--ctx", "512"])
        assertOneLineError(short, contains: "less than one")
    }

    /// perplexity's windows are 512 tokens without --ctx (llama-perplexity's default), the
    /// model's maximum with --ctx 0 (what 0 means for every command).
    func testCLIPerplexityContextDefaults() throws {
        let path = ModelFixtures.tempDir + "/ppl-ctx-\(UUID().uuidString).gtm"
        try ModelFileRewriter.rewrite(modelPath, to: path, metadata: { $0.config.maxPositionEmbeddings = 1024 })
        let tokenizer = try ModelFixtures.tokenizer(for: try ModelFixtures.model("tiny-gemma", .bf16))
        var text = ""
        while tokenizer.encode(text).count < 700 { text += "The cat sat on the mat. " }
        let file = ModelFixtures.tempDir + "/ppl-ctx-\(UUID().uuidString).txt"
        try text.write(toFile: file, atomically: false, encoding: .utf8)

        let byDefault = try run(["perplexity", "-m", path, "-f", file, "-t", "2"])
        XCTAssertEqual(byDefault.status, 0, byDefault.stderr)
        XCTAssertTrue(byDefault.stderr.contains("1 windows of 512 tokens"), byDefault.stderr)
        assertOneLineError(try run(["perplexity", "-m", path, "-f", file, "--ctx", "0"]), contains: "less than one 1024-token window")
    }

    func checkPerplexity(file: String, text: String, flags: [String], cacheType: KVCacheType) throws {
        let o = try run(["perplexity", "-m", modelPath, "-f", file, "--ctx", "64"] + flags)
        XCTAssertEqual(o.status, 0, o.stderr)
        let line = o.stdout.split(separator: "\n").last { $0.hasPrefix("Final estimate: PPL = ") }
        XCTAssertNotNil(line, o.stdout)

        // The same figure computed here: windows of 64 tokens, <bos> first, second half scored.
        let model = try ModelFixtures.model("tiny-gemma", .bf16)
        let tokenizer = try ModelFixtures.tokenizer(for: model)
        let tokens = [tokenizer.bosId] + tokenizer.encode(text)
        let session = try InferenceSession(model: model, contextLength: 64, cacheType: cacheType)
        var nll = 0.0, count = 0
        for w in 0..<(tokens.count / 64) {
            session.reset()
            var window = Array(tokens[(w * 64)..<((w + 1) * 64)])
            window[0] = tokenizer.bosId
            for j in 0..<63 {
                try session.forward(token: window[j])
                guard j >= 32 else { continue }
                let lp = LogitComparison.logSoftmax(session.logits)
                nll -= lp[window[j + 1]]
                count += 1
            }
        }
        // Same figure to 1e-6 relative (the CLI may sum the log-probabilities in another order).
        let expected = exp(nll / Double(count))
        let prefix = "Final estimate: PPL = "
        let figure = line!.hasPrefix(prefix) ? line!.dropFirst(prefix.count).split(separator: " ").first : nil
        let printed = figure.flatMap { Double(String($0)) }
        XCTAssertNotNil(printed, String(line!))
        XCTAssertEqual(printed ?? 0, expected, accuracy: expected * 1e-6, "\(cacheType): \(line!) vs \(expected)")
    }

    func testCLIChat() throws {
        // f32 cache: compared with the transformers goldens token for token, which an f16 cache may flip at a near-tie.
        let o = try run(["chat", "-m", modelPath, "--temp", "0", "-n", "4", "--verbose", "--cache-type", "f32"],
                        stdin: "Write a short poem about the sea.\n/reset\nWrite a short poem about the sea.\nand more\n")
        XCTAssertEqual(o.status, 0, o.stderr)
        let tokenizer = try ModelFixtures.tokenizer(for: try ModelFixtures.model("tiny-gemma", .bf16))
        let reply = tokenizer.decode(Array(prompt("chat").greedyIds.prefix(4)))
        let lines = o.stdout.components(separatedBy: "\n")
        // Three replies, the first two identical (after /reset).
        XCTAssertEqual(lines.count, 4, o.stdout)
        XCTAssertEqual(lines[0], reply)
        XCTAssertEqual(lines[1], reply)
        XCTAssertTrue(o.stderr.contains("[prompt"), o.stderr)
        let quit = try run(["chat", "-m", modelPath, "--temp", "0", "-n", "2"], stdin: "/quit\nnot read\n")
        XCTAssertEqual(quit.status, 0)
        XCTAssertEqual(quit.stdout, "")
    }

    func testCLIErrors() throws {
        assertOneLineError(try run(["run", "-m", "/nonexistent/model.gtm", "-p", "hi"]), contains: "/nonexistent/model.gtm")
        let notModel = ModelFixtures.tempDir + "/not-a-model.gtm"
        try "just text".write(toFile: notModel, atomically: false, encoding: .utf8)
        assertOneLineError(try run(["run", "-m", notModel, "-p", "hi"]), contains: "not-a-model.gtm")
        assertOneLineError(try run(["tokenize", "-m", notModel, "-p", "hi"]), contains: "not-a-model.gtm")
        let long = prompt("license")
        assertOneLineError(try run(["run", "-m", modelPath, "-p", long.text, "--ctx", "8"]), contains: "context")
        assertOneLineError(try run(["run", "-m", modelPath, "-p", "hi", "--threads", "0"]), contains: "--threads")
        assertOneLineError(try run(["run", "-m", modelPath, "-p", "hi", "--temp", "-1"]), contains: "temperature")
        assertOneLineError(try run(["run", "-m", modelPath, "-p", "hi", "--top-p", "2"]), contains: "top-p")
        assertOneLineError(try run(["run", "-m", modelPath, "-p", "hi", "--ctx", "-5"]), contains: "--ctx")
        assertOneLineError(try run(["run", "-m", modelPath, "-p", "hi", "-n", "-2"]), contains: "--max-tokens")
        assertOneLineError(try run(["run", "-m", modelPath, "-p", "hi", "-n", "many"]), contains: "many")
        let unlimited = try run(["run", "-m", modelPath, "-p", "hi", "-n", "-1", "--ctx", "12", "--temp", "0", "--json", "--ignore-eos"])
        XCTAssertEqual(unlimited.status, 0, unlimited.stderr)
        XCTAssertTrue(unlimited.stdout.contains("\"stop_reason\":\"context_full\""), unlimited.stdout)
        assertOneLineError(try run(["run", "-m", modelPath, "-p", "hi", "--bogus-flag"]), contains: "bogus")
        assertOneLineError(try run(["run", "-p", "hi"]), contains: "model")
        assertOneLineError(try run(["run", "-m", modelPath, "-p", "hi", "-f", "x"]), contains: "not both")
        assertOneLineError(try run(["run", "-m", modelPath, "-f", "/nonexistent/prompt.txt"]), contains: "/nonexistent/prompt.txt")
        assertOneLineError(try run(["nosuchcommand"]), contains: "nosuchcommand")
        let help = try run(["run", "--help"])
        XCTAssertEqual(help.status, 0)
        for flag in ["--max-tokens", "--temp", "--top-k", "--top-p", "--min-p", "--repeat-penalty", "--repeat-last-n",
                     "--seed", "--stop", "--ctx", "--threads", "--json", "--verbose", "--unpack", "--no-bos"] {
            XCTAssertTrue(help.stdout.contains(flag), "help lacks \(flag)")
        }
    }

    /// A compressed model is unpacked on first use with a progress line; later runs map it.
    func testCLICompressedModel() throws {
        let source = try ModelFixtures.convertedPath("tiny-gemma", .q8, compression: .always)
        let path = ModelFixtures.tempDir + "/cli-compressed-\(UUID().uuidString).gtm"
        try FileManager.default.copyItem(atPath: source, toPath: path)
        let first = try run(["run", "-m", path, "-p", "The cat", "--temp", "0", "-n", "3"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stderr.contains("unpacking"), first.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path + ".unpacked"))
        let second = try run(["run", "-m", path, "-p", "The cat", "--temp", "0", "-n", "3"])
        XCTAssertEqual(second.stderr, "")
        XCTAssertEqual(second.stdout, first.stdout)
        let memory = try run(["run", "-m", path, "-p", "The cat", "--temp", "0", "-n", "3", "--unpack", "memory"])
        XCTAssertEqual(memory.stdout, first.stdout)
    }
}
