import Foundation
@testable import GemmaTiny
import XCTest

/// `--cache-type f32|f16` on the commands that run the model (as a process, `GemmaTinyCLI`);
/// f16 is the default.
final class CLICacheTypeTests: XCTestCase {
    var modelPath: String!

    override func setUpWithError() throws {
        modelPath = try ModelFixtures.convertedPath("tiny-gemma", .bf16)
        _ = try CLITests.binary()
    }

    func run(_ arguments: [String], stdin: String? = nil) throws -> GemmaTinyCLI.Output {
        try GemmaTinyCLI.run(arguments, stdin: stdin)
    }

    /// The figure of perplexity's "Final estimate: PPL = x" line.
    func perplexity(_ o: GemmaTinyCLI.Output) -> Double? {
        let prefix = "Final estimate: PPL = "
        guard let line = o.stdout.split(separator: "\n").last(where: { $0.hasPrefix(prefix) }) else { return nil }
        return line.dropFirst(prefix.count).split(separator: " ").first.flatMap { Double(String($0)) }
    }

    func testCLICacheTypeF16RunsEveryCommand() throws {
        let o = try run(["run", "-m", modelPath, "-p", "The cat", "--temp", "0", "-n", "6", "--ignore-eos", "--json",
                         "--cache-type", "f16"])
        XCTAssertEqual(o.status, 0, o.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(o.stdout.utf8)) as! [String: Any]
        XCTAssertEqual((json["generated_ids"] as? [Int])?.count, 6, o.stdout)

        let chat = try run(["chat", "-m", modelPath, "--temp", "0", "-n", "3", "--cache-type", "f16"], stdin: "Hello\n")
        XCTAssertEqual(chat.status, 0, chat.stderr)
        XCTAssertFalse(chat.stdout.isEmpty)

        // Perplexity with either cache: close, not necessarily equal.
        let text = String(repeating: "The cat sat on the mat. Permission is hereby granted, free of charge. ", count: 12)
        let file = ModelFixtures.tempDir + "/ppl-\(UUID().uuidString).txt"
        try text.write(toFile: file, atomically: false, encoding: .utf8)
        let f32 = try run(["perplexity", "-m", modelPath, "-f", file, "--ctx", "64", "--cache-type", "f32"])
        let f16 = try run(["perplexity", "-m", modelPath, "-f", file, "--ctx", "64", "--cache-type", "f16"])
        XCTAssertEqual(f32.status, 0, f32.stderr)
        XCTAssertEqual(f16.status, 0, f16.stderr)
        let a = try XCTUnwrap(perplexity(f32), f32.stdout), b = try XCTUnwrap(perplexity(f16), f16.stdout)
        XCTAssertEqual(b, a, accuracy: a * 0.01, "f16 \(b) vs f32 \(a)")

        // bench prints the cache type (table footer, memory header, JSON).
        let bench = try run(["bench", "-m", modelPath, "-p", "8", "-n", "2", "-r", "1", "-t", "1", "--no-bandwidth",
                             "--cache-type", "f16"])
        XCTAssertEqual(bench.status, 0, bench.stderr)
        XCTAssertTrue(bench.stdout.contains("KV cache f16;"), bench.stdout)
        XCTAssertTrue(bench.stdout.contains("KV cache (f16, reserved)"), bench.stdout)
        let plain = try run(["bench", "-m", modelPath, "-p", "8", "-n", "0", "-r", "1", "-t", "1", "-o", "json"])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(plain.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(report["cache_type"] as? String, "f16", "the default")
    }

    /// f16 is the default: no --cache-type gives what --cache-type f16 gives; --cache-type f32
    /// (the exact cache) still runs every command and is what bench reports.
    func testCLICacheTypeDefaultIsF16AndF32StillWorks() throws {
        let base: [String] = ["run", "-m", modelPath, "-p", "The cat", "--temp", "0", "-n", "6", "--ignore-eos", "--json"]
        let plain = try run(base)
        let f16 = try run(base + ["--cache-type", "f16"])
        let f32 = try run(base + ["--cache-type", "f32"])
        for o in [plain, f16, f32] { XCTAssertEqual(o.status, 0, o.stderr) }
        func ids(_ o: GemmaTinyCLI.Output) throws -> [Int]? {
            (try JSONSerialization.jsonObject(with: Data(o.stdout.utf8)) as? [String: Any])?["generated_ids"] as? [Int]
        }
        XCTAssertEqual(try ids(plain), try ids(f16), "the default is f16")
        XCTAssertEqual(try ids(f32)?.count, 6, f32.stdout)

        let chat = try run(["chat", "-m", modelPath, "--temp", "0", "-n", "3", "--cache-type", "f32"], stdin: "Hello\n")
        XCTAssertEqual(chat.status, 0, chat.stderr)
        XCTAssertFalse(chat.stdout.isEmpty)

        let bench = try run(["bench", "-m", modelPath, "-p", "8", "-n", "0", "-r", "1", "-t", "1", "-o", "json",
                             "--cache-type", "f32"])
        XCTAssertEqual(bench.status, 0, bench.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(bench.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(report["cache_type"] as? String, "f32")

        for command in ["run", "chat", "perplexity", "bench"] {
            let help = try run([command, "--help"])
            let words = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")  // the help wraps
            XCTAssertTrue(words.contains("'f16' (default"), "\(command) --help should name f16 the default: \(help.stdout)")
        }
    }

    func testCLICacheTypeBadValuesAndHelp() throws {
        for command in [["run", "-p", "hi"], ["chat"], ["perplexity", "-f", "x.txt"], ["bench"]] {
            let o = try run([command[0], "-m", modelPath] + command.dropFirst() + ["--cache-type", "q8"])
            GemmaTinyCLI.assertOneLineError(o, contains: "--cache-type")
        }
        for command in ["run", "chat", "perplexity", "bench"] {
            let help = try run([command, "--help"])
            XCTAssertEqual(help.status, 0)
            XCTAssertTrue(help.stdout.contains("--cache-type"), "\(command) --help lacks --cache-type")
        }
    }
}
