import Foundation
@testable import GemmaTiny
import XCTest

/// `gemma-tiny run --json-schema / --json-object`, run as a process on the tiny random-weight
/// model: whatever that model prefers, the reply follows the format.
final class CLIStructuredOutputTests: XCTestCase {
    static let schema = #"{"type":"object","properties":{"ok":{"type":"boolean"},"n":{"type":"integer"},"kind":{"enum":["a","b"]}},"required":["ok","n","kind"],"additionalProperties":false}"#

    func run(_ arguments: [String]) throws -> GemmaTinyCLI.Output { try GemmaTinyCLI.run(arguments) }

    func testRunWithASchemaFileAndInline() throws {
        let model = try ModelFixtures.convertedPath("tiny-gemma", .bf16)
        let file = ModelFixtures.tempDir + "/cli-schema.json"
        try Self.schema.write(toFile: file, atomically: false, encoding: .utf8)
        for (i, schema) in [file, Self.schema].enumerated() {
            let o = try run(["run", "-m", model, "-p", "Answer:", "--temp", "1", "--seed", "\(i)", "-n", "300",
                             "--json-schema", schema, "--json"])
            XCTAssertEqual(o.status, 0, o.stderr)
            let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(o.stdout.utf8)) as? [String: Any])
            XCTAssertEqual(report["stop_reason"] as? String, "response_complete")
            let text = try XCTUnwrap(report["text"] as? String)
            let reply = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
            XCTAssertEqual(Set(reply.keys), ["ok", "n", "kind"], text)
            XCTAssertTrue(reply["ok"] is Bool && reply["n"] is Int && ["a", "b"].contains(reply["kind"] as? String ?? ""), text)
        }
        let o = try run(["run", "-m", model, "-p", "Answer:", "--temp", "0", "-n", "300", "--json-object"])
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertTrue(o.stdout.contains("{"), o.stdout)
    }

    /// Asking the grammar about the drawn token first, and masking only when it is refused,
    /// picks the same tokens as masking at every token (greedy).
    func testDrawFirstEqualsMaskingEveryToken() throws {
        let model = try ModelFixtures.convertedPath("tiny-gemma", .bf16)
        let arguments = ["run", "-m", model, "-p", "Answer:", "--temp", "0", "-n", "200", "--json-schema", Self.schema, "--json"]
        let drawFirst = try GemmaTinyCLI.run(arguments)
        let maskEvery = try GemmaTinyCLI.run(arguments, extraEnvironment: ["GEMMA_TINY_MASK_EVERY_TOKEN": "1"])
        XCTAssertEqual(drawFirst.status, 0, drawFirst.stderr)
        XCTAssertEqual(maskEvery.status, 0, maskEvery.stderr)
        let ids = { (o: GemmaTinyCLI.Output) in (try? JSONSerialization.jsonObject(with: Data(o.stdout.utf8)) as? [String: Any])?["generated_ids"] as? [Int] }
        XCTAssertNotNil(ids(drawFirst))
        XCTAssertEqual(ids(drawFirst), ids(maskEvery))
    }

    func testBadSchemasAreOneLineErrors() throws {
        let model = try ModelFixtures.convertedPath("tiny-gemma", .bf16)
        let cases: [([String], String)] = [
            (["--json-schema", #"{"type":"string","maxLength":2}"#], "'maxLength'"),
            (["--json-schema", #"{"type":"#], "not valid JSON"),
            (["--json-schema", "/nonexistent/schema.json"], "cannot read the JSON schema file"),
            (["--json-schema", #"{"type":"object"}"#, "--json-object"], "cannot be used together"),
        ]
        for (flags, text) in cases {
            let o = try run(["run", "-m", model, "-p", "x"] + flags)
            GemmaTinyCLI.assertOneLineError(o, contains: text)
        }
    }
}
