import Foundation
@testable import GemmaConvert
import GemmaKernels
@testable import GemmaTiny
import XCTest

/// Careless input to the commands gets a message that says what is wrong (issue 16, the
/// smaller items).
final class CLIUserMistakeTests: XCTestCase {
    var modelPath: String!

    override func setUpWithError() throws {
        modelPath = try ModelFixtures.convertedPath("tiny-gemma", .bf16)
        _ = try GemmaTinyCLI.binary()
    }

    /// `perplexity -f` with a missing file says why it cannot read it, as `run -f` does.
    func testPerplexityMissingFileSaysWhy() throws {
        let o = try GemmaTinyCLI.run(["perplexity", "-m", modelPath, "-f", "/nonexistent/text.txt"])
        GemmaTinyCLI.assertOneLineError(o, contains: "cannot read /nonexistent/text.txt: no such file")
    }

    /// Option values that would silently do nothing (or the wrong thing) are refused: no
    /// windows to score, an empty stop string.
    func testOptionValuesThatMeanNothingAreRefused() throws {
        for chunks in ["0", "-2"] {
            GemmaTinyCLI.assertOneLineError(try GemmaTinyCLI.run(["perplexity", "-m", modelPath, "-f", "/nonexistent/text.txt", "--chunks", chunks]),
                                            contains: "--chunks must be -1 (all windows) or at least 1, got \(chunks)")
        }
        for command in [["run", "-p", "hi"], ["chat"]] {
            GemmaTinyCLI.assertOneLineError(try GemmaTinyCLI.run(command + ["-m", modelPath, "--stop", ""]),
                                            contains: "--stop takes a non-empty string")
        }
    }

    /// A prompt or text that cannot be read is one line and exit 1, wherever it comes from:
    /// standard input closed or a directory (these crashed once), a directory given to -f. A
    /// pipe given as a path (`-f <(...)`, `-f /dev/stdin`) is read like a file.
    func testUnreadableInputsAreOneLineErrors() throws {
        let binary = try GemmaTinyCLI.binary()
        let dir = ModelFixtures.tempDir + "/input-dir-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func shell(_ script: String) throws -> GemmaTinyCLI.Output {
            try GemmaTinyCLI.run(["-c", script, binary, modelPath, dir], executable: "/bin/sh")
        }
        GemmaTinyCLI.assertOneLineError(try shell(#"exec "$0" tokenize -m "$1" <&-"#), contains: "cannot read standard input")
        GemmaTinyCLI.assertOneLineError(try shell(#"exec "$0" run -m "$1" -n 2 <&-"#), contains: "cannot read standard input")
        GemmaTinyCLI.assertOneLineError(try shell(#"exec "$0" run -m "$1" -n 2 -f - < "$2""#),
                                        contains: "cannot read standard input: is a directory")
        GemmaTinyCLI.assertOneLineError(try GemmaTinyCLI.run(["run", "-m", modelPath, "-n", "2", "-f", dir]),
                                        contains: "cannot read \(dir): is a directory")
        GemmaTinyCLI.assertOneLineError(try GemmaTinyCLI.run(["perplexity", "-m", modelPath, "-f", dir]),
                                        contains: "is a directory")
        let piped = try shell(#"echo "Hello world" | exec "$0" tokenize -m "$1" -f /dev/stdin"#)
        let direct = try GemmaTinyCLI.run(["tokenize", "-m", modelPath, "-p", "Hello world\n"])
        XCTAssertEqual(piped.status, 0, piped.stderr)
        XCTAssertEqual(piped.stdout, direct.stdout)
    }

    /// Text that cannot be written (stdout on a full disk: /dev/full) is an error, not exit 0.
    func testFullStandardOutputIsAnError() throws {
        guard FileManager.default.fileExists(atPath: "/dev/full") else { throw XCTSkip("no /dev/full") }
        let binary = try GemmaTinyCLI.binary()
        for command in [#"exec "$0" tokenize -m "$1" -p hi > /dev/full"#, #"exec "$0" run -m "$1" -p hi -n 2 > /dev/full"#,
                        #"exec "$0" run -m "$1" -p hi -n 2 --json > /dev/full"#] {
            let o = try GemmaTinyCLI.run(["-c", command, binary, modelPath], executable: "/bin/sh")
            GemmaTinyCLI.assertOneLineError(o, contains: "cannot write standard output: No space left on device")
        }
    }

    /// An error that quotes bytes of a damaged file stays one line, and its control characters
    /// (a newline, an escape sequence) are printed as visible escapes, not sent to the terminal.
    func testErrorsQuotingFileBytesStayOneVisibleLine() throws {
        let good = Array(try Data(contentsOf: URL(fileURLWithPath: modelPath)))
        let header = try ModelFile(path: modelPath).header
        let tokenizer = header.tokenizer
        let piece = Array("<0x41>".utf8)
        let at = try XCTUnwrap((tokenizer.lowerBound..<(tokenizer.upperBound - piece.count)).first { Array(good[$0..<($0 + piece.count)]) == piece })
        for (byte, shown) in [(UInt8(0x0A), #"<\nx41>"#), (UInt8(0x1B), #"<\u{1b}x41>"#)] {
            var bytes = good
            bytes[at + 1] = byte
            // Re-seal the sections checksum (offset 88) and the header checksum (120).
            var h = gt_xxh64_state()
            gt_xxh64_reset(&h, 0)
            bytes.withUnsafeBytes { raw in
                for r in [header.metadata, header.tokenizer, header.tensorTable] { gt_xxh64_update(&h, raw.baseAddress! + r.lowerBound, r.count) }
            }
            withUnsafeBytes(of: gt_xxh64_digest(&h).littleEndian) { for i in 0..<8 { bytes[88 + i] = $0[i] } }
            let sum = bytes.withUnsafeBytes { gt_xxh64($0.baseAddress, 120, 0) }
            withUnsafeBytes(of: sum.littleEndian) { for i in 0..<8 { bytes[120 + i] = $0[i] } }
            let path = ModelFixtures.tempDir + "/piece-\(UUID().uuidString).gtm"
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            defer { try? FileManager.default.removeItem(atPath: path) }
            let o = try GemmaTinyCLI.run(["tokenize", "-m", path, "-p", "hi"])
            GemmaTinyCLI.assertOneLineError(o, contains: shown)
            XCTAssertFalse(o.stderr.unicodeScalars.contains { $0.value == 0x1B }, o.stderr)
        }
    }

    /// Damaged weights that compute NaN (every q8 scale of the embedding a NaN, in an
    /// uncompressed file, whose data checksums are not read on start): an error naming the
    /// cause, not tokens made of NaN and exit 0 (as once).
    func testNaNWeightsAreAnErrorNotTokens() throws {
        let path = ModelFixtures.tempDir + "/nan-\(UUID().uuidString).gtm"
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try Converter.convert(checkpoint: ModelFixtures.fixtures.appendingPathComponent("tiny-gemma").path, output: path,
                                  options: ConversionOptions(type: .q8, compression: .never))
        let embedding = try XCTUnwrap(try ModelFile(path: path).tensor("model.embed_tokens.weight"))
        XCTAssertEqual(embedding.type, .q8)
        let start = try ModelFile(path: path).header.data.lowerBound + embedding.offset
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        for block in stride(from: start, to: start + embedding.length, by: 34) {  // f16 scale first
            bytes[block] = 0x00
            bytes[block + 1] = 0x7E
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        for args in [["run", "-p", "hi", "-n", "2"], ["run", "-p", "hi", "-n", "2", "--json"]] {
            let o = try GemmaTinyCLI.run(Array(args.prefix(1)) + ["-m", path] + args.dropFirst())
            GemmaTinyCLI.assertOneLineError(o, contains: "NaN or infinite logit")
        }
        let session = try InferenceSession(model: try GemmaModel.load(path: path), contextLength: 8)
        XCTAssertThrowsError(try session.forward(token: 2)) { XCTAssertEqual($0 as? InferenceError, .nonFiniteLogits) }
    }

    /// In `chat`, a mistyped command is reported, not sent to the model (and from a pipe, the
    /// exit status says so); text that merely starts with a slash still is a message.
    func testChatUnknownCommandIsNotSentToTheModel() throws {
        let o = try GemmaTinyCLI.run(["chat", "-m", modelPath, "--temp", "0", "-n", "2"], stdin: "/foo\n/quit\n")
        XCTAssertEqual(o.status, 1, o.stderr)
        XCTAssertEqual(o.stdout, "", "nothing was generated")
        XCTAssertTrue(o.stderr.contains("error: unknown command /foo (commands: /reset, /quit)"), o.stderr)
        let path = try GemmaTinyCLI.run(["chat", "-m", modelPath, "--temp", "0", "-n", "2"], stdin: "/usr/bin is a folder?\n")
        XCTAssertEqual(path.status, 0, path.stderr)
        XCTAssertFalse(path.stdout.isEmpty, "a message starting with a slash is answered")
        XCTAssertFalse(path.stderr.contains("unknown command"), path.stderr)
    }

    /// Piped chat is a script: a message too long for the context is one error line, the next
    /// message is still answered, and the exit status is 1 (0 when every message was answered).
    func testPipedChatFailureSetsTheExitStatus() throws {
        let long = String(repeating: "word ", count: 200)
        let o = try GemmaTinyCLI.run(["chat", "-m", modelPath, "--temp", "0", "-n", "2", "--ctx", "64"], stdin: long + "\nHello\n")
        XCTAssertEqual(o.status, 1, o.stderr)
        XCTAssertEqual(o.stderr.split(separator: "\n").filter { $0.hasPrefix("error: ") }.count, 1, o.stderr)
        XCTAssertTrue(o.stderr.contains("context"), o.stderr)
        XCTAssertFalse(o.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "Hello was answered")
        let fine = try GemmaTinyCLI.run(["chat", "-m", modelPath, "--temp", "0", "-n", "2", "--ctx", "64"], stdin: "Hello\n")
        XCTAssertEqual(fine.status, 0, fine.stderr)
        XCTAssertEqual(fine.stdout, o.stdout, "the same reply to Hello")
    }
}
