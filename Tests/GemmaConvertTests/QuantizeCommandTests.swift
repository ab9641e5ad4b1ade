import Foundation
import XCTest

/// The `gemma-quantize` executable: exit codes, one-line errors, subcommands.
final class QuantizeCommandTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gt-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    static var binary: String { QuantizeProcess.binary }

    func run(_ arguments: [String]) throws -> QuantizeProcess.Output { try QuantizeProcess.run(arguments) }

    var fixture: String { SyntheticCheckpoint.repositoryRoot + "/fixtures/tiny-gemma" }

    func assertOneLineError(_ r: QuantizeProcess.Output, mentioning fragment: String, line: UInt = #line) {
        XCTAssertNotEqual(r.status, 0, line: line)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "one line: \(r.stderr)", line: line)
        XCTAssertTrue(r.stderr.hasPrefix("error: "), r.stderr, line: line)
        XCTAssertTrue(r.stderr.contains(fragment), "'\(r.stderr)' should mention \(fragment)", line: line)
    }

    func testConvertInspectVerify() throws {
        let out = dir + "/tiny.gtm"
        let r = try run([fixture, "-o", out, "--type", "q8", "--report"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("bits per weight"), r.stdout)
        XCTAssertTrue(r.stdout.contains("model.layers.1.mlp.down_proj.weight"), "report lists tensors")
        let inspect = try run(["inspect", out])
        XCTAssertEqual(inspect.status, 0)
        XCTAssertTrue(inspect.stdout.contains("model.embed_tokens.weight"))
        XCTAssertTrue(inspect.stdout.contains("\"num_key_value_heads\" : 1"))
        let verify = try run(["verify", out])
        XCTAssertEqual(verify.status, 0, verify.stderr)
        XCTAssertTrue(verify.stdout.hasPrefix("ok:"))
        // Output that cannot be written (stdout on a full disk) is an error, not exit 0.
        if FileManager.default.fileExists(atPath: "/dev/full") {
            assertOneLineError(try QuantizeProcess.run(["inspect", out], shellPrelude: "exec > /dev/full"),
                               mentioning: "cannot write standard output")
        }
    }

    func testVerifyNamesTheCorruptTensor() throws {
        let out = dir + "/tiny.gtm"
        XCTAssertEqual(try run([fixture, "-o", out, "--no-compress", "--type", "f32"]).status, 0)
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: out)))
        // The last tensor before the table is model.norm.weight (f32, 256 bytes): flip a bit in it.
        let tableOffset = Int(bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 48, as: UInt64.self) })
        bytes[tableOffset - 100] ^= 0x04
        try Data(bytes).write(to: URL(fileURLWithPath: out))
        assertOneLineError(try run(["verify", out]), mentioning: "model.norm.weight")
    }

    /// --compress: the summary says how many tensors are compressed, and inspect shows which.
    func testCompressChoices() throws {
        var zstdColumns: [String: [String]] = [:]
        for choice in ["auto", "always", "never"] {
            let out = dir + "/\(choice).gtm"
            let r = try run([fixture, "-o", out, "--type", "q8", "--compress", choice])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("(--compress \(choice))"), r.stdout)
            let lines = try run(["inspect", out]).stdout.split(separator: "\n")
            let fields: [[String]] = lines.map { line in line.split(separator: " ").map(String.init) }
            let rows = fields.filter { $0.count == 8 && ["yes", "no"].contains($0[6]) }
            zstdColumns[choice] = rows.map { $0[6] }
            // f32 norms widened from bf16 compress; q8 matrices of random values do not.
            if choice == "auto" {
                for row in rows { XCTAssertEqual(row[6] == "yes", row[1] == "f32", "\(row)") }
            }
        }
        XCTAssertEqual(Set(zstdColumns["always"]!), ["yes"])
        XCTAssertEqual(Set(zstdColumns["never"]!), ["no"])
        XCTAssertEqual(Set(zstdColumns["auto"]!), ["yes", "no"])
        XCTAssertEqual(try run([fixture, "-o", dir + "/n.gtm", "--type", "q8", "--no-compress"]).stdout
                        .contains("0 of"), true)
    }

    /// --type's default is shown by name, as the option takes it (not StorageType's raw value).
    func testHelpShowsTheDefaultTypeByName() throws {
        let r = try run(["convert", "--help"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let help = r.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        XCTAssertTrue(help.contains("(values: f32, bf16, q8, q4, q5, q4k, q6k; default: q4k)"), help)
        XCTAssertTrue(help.contains("(values: f32, bf16, q8, q4, q5, q4k, q6k)"), "--embedding-type has no default: \(help)")
    }

    func testErrorsAreOneLineWithNonZeroExit() throws {
        assertOneLineError(try run([dir + "/missing", "-o", dir + "/x.gtm"]), mentioning: "missing")
        assertOneLineError(try run(["inspect", fixture + "/config.json"]), mentioning: "not a gemma-tiny model file")
        assertOneLineError(try run(["verify", dir + "/none.gtm"]), mentioning: "none.gtm")
        let existing = dir + "/exists.gtm"
        try Data("keep".utf8).write(to: URL(fileURLWithPath: existing))
        assertOneLineError(try run([fixture, "-o", existing]), mentioning: "--force")
        XCTAssertEqual(try String(contentsOfFile: existing, encoding: .utf8), "keep")
        // Usage errors too (ArgumentParser's own messages, folded into one line; a negative
        // number is a value out of range, not a missing one).
        assertOneLineError(try run([fixture, "-o", dir + "/y.gtm", "--type", "q3"]), mentioning: "q4k, q6k")
        assertOneLineError(try run([fixture]), mentioning: "--output")
        assertOneLineError(try run(["verify", dir + "/a.gtm", dir + "/b.gtm"]), mentioning: "b.gtm")
        assertOneLineError(try run([fixture, "-o", dir + "/y.gtm", "--zstd-level", "-5"]), mentioning: "between 1 and 22, got -5")
        assertOneLineError(try run([fixture, "-o", dir + "/y.gtm", "--threads", "-1"]), mentioning: "got -1")
        assertOneLineError(try run(["inspect"]), mentioning: "<file>")
        assertOneLineError(try run([fixture, "-o", dir + "/y.gtm", "--compress", "often"]), mentioning: "'auto', 'always' or 'never'")
        assertOneLineError(try run([fixture, "-o", dir + "/y.gtm", "--compress", "always", "--no-compress"]),
                           mentioning: "--no-compress contradicts --compress always")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["exists.gtm"], "nothing else written")
    }
}
