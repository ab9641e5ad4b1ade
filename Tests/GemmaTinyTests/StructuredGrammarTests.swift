import Foundation
@testable import GemmaTiny
import XCTest

/// The JSON grammar behind structured output, byte by byte, against references written elsewhere:
/// the `jsonschema` library (fixtures/json_schema_cases.py) and Foundation's JSONSerialization.
final class StructuredGrammarTests: XCTestCase {
    struct Goldens: Decodable {
        struct Case: Decodable {
            var schema: String
            var candidates: [Candidate]
        }
        struct Candidate: Decodable {
            var text: String
            var valid: Bool
            var restricted: Bool
        }
        struct Mutation: Decodable {
            var hex: String
            var valid: Bool
        }
        var cases: [Case]
        var jsonObjectMutations: [Mutation]

        enum CodingKeys: String, CodingKey { case cases, jsonObjectMutations = "json_object_mutations" }
    }

    /// Whether the grammar accepts `text` as a whole reply.
    static func accepts(_ grammar: JSONGrammar, _ text: String) -> Bool {
        let stepper = JSONStepper(grammar: grammar)
        var states = [stepper.initialState]
        for c in text.utf8 {
            var next: [JSONParseState] = []
            for s in states { stepper.advance(s, c, into: &next) }
            states = next
            if states.isEmpty { return false }
        }
        return states.contains(where: \.canEnd)
    }

    func testGrammarAgreesWithTheJSONSchemaLibrary() throws {
        let url = ModelFixtures.fixtures.appendingPathComponent("goldens/json-schema-cases.json")
        let goldens = try JSONDecoder().decode(Goldens.self, from: Data(contentsOf: url))
        var checked = 0
        for c in goldens.cases {
            let grammar = c.schema == "json_object" ? JSONGrammar.jsonObject : try JSONSchemaCompiler.compile(schema: c.schema)
            for candidate in c.candidates {
                let expected = candidate.valid && !candidate.restricted
                XCTAssertEqual(Self.accepts(grammar, candidate.text), expected,
                               "\(candidate.text) against \(c.schema): jsonschema says \(candidate.valid ? "valid" : "invalid")"
                               + (candidate.restricted ? " (refused by design)" : ""))
                checked += 1
            }
        }
        XCTAssertEqual(checked, 84)
    }

    /// Random objects (compact and indented) and one-byte mutations of them: the json_object
    /// grammar accepts exactly what Python's json module reads as an object.
    func testJSONObjectGrammarAgreesWithPythonJSON() throws {
        let url = ModelFixtures.fixtures.appendingPathComponent("goldens/json-schema-cases.json")
        let mutations = try JSONDecoder().decode(Goldens.self, from: Data(contentsOf: url)).jsonObjectMutations
        XCTAssertEqual(mutations.count, 1335)
        var valid = 0
        for m in mutations {
            let bytes = try XCTUnwrap(Self.bytes(hex: m.hex))
            let ours = String(validating: bytes, as: UTF8.self).map { Self.accepts(.jsonObject, $0) } ?? false
            XCTAssertEqual(ours, m.valid, "\(String(decoding: bytes, as: UTF8.self).debugDescription): json says \(m.valid)")
            if m.valid { valid += 1 }
        }
        XCTAssertEqual(valid, 400)
    }

    static func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        return stride(from: 0, to: digits.count, by: 2).compactMap { UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16) }
    }

    func testUnsupportedKeywordsAreNamed() {
        let cases: [(String, String?)] = [
            (#"{"type":"string","pattern":"a+"}"#, "pattern"),
            (#"{"type":"integer","minimum":1}"#, "minimum"),
            (#"{"oneOf":[{"type":"string"}]}"#, "oneOf"),
            (#"{"type":"object","properties":{"a":{"type":"string","format":"date"}}}"#, "format"),
            (#"{"type":"strin"}"#, "type"),
            (#"{"type":"array","minItems":3,"maxItems":2}"#, "minItems"),
            (#"{"enum":[]}"#, "enum"),
            (##"{"$ref":"#/$defs/missing"}"##, "$ref"),
            (##"{"$defs":{"a":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"}"##, "$ref"),
            (#"{"type":"object""#, nil),
            (#"false"#, nil),
        ]
        for (schema, keyword) in cases {
            do {
                try JSONSchemaCompiler.validate(schema: schema)
                XCTFail("\(schema) was accepted")
            } catch {
                XCTAssertEqual(error.keyword, keyword, "\(schema): \(error.message)")
                if let keyword { XCTAssertTrue(error.message.contains("'\(keyword)'"), error.message) }
            }
        }
        XCTAssertNoThrow(try JSONSchemaCompiler.validate(schema: #"{"title":"t","description":"d","type":"object","properties":{"a":{"type":"string","description":"x"}},"required":["a"],"additionalProperties":false}"#))
    }

    func testOpenAIResponseFormat() throws {
        XCTAssertNil(try ResponseFormat.openAI(requestBody: #"{"messages":[]}"#))
        XCTAssertEqual(try ResponseFormat.openAI(requestBody: #"{"response_format":{"type":"json_object"}}"#), .jsonObject)
        XCTAssertEqual(try ResponseFormat.openAI(requestBody: #"{"response_format":{"type":"text"}}"#), .text)
        // The schema keeps its properties' order (the order replies are written in).
        let body = #"{"response_format":{"type":"json_schema","json_schema":{"name":"x","strict":true,"schema":{"type":"object","properties":{"z":{"type":"integer"},"a":{"type":"string"}}}}}}"#
        XCTAssertEqual(try ResponseFormat.openAI(requestBody: body),
                       .jsonSchema(#"{"type":"object","properties":{"z":{"type":"integer"},"a":{"type":"string"}}}"#))
        XCTAssertThrowsError(try ResponseFormat.openAI(requestBody: #"{"response_format":{"type":"xml"}}"#))
        XCTAssertThrowsError(try ResponseFormat.openAI(requestBody: #"{"response_format":{"type":"json_schema","json_schema":{"schema":{"type":"string","maxLength":3}}}}"#)) {
            XCTAssertEqual(($0 as? JSONSchemaError)?.keyword, "maxLength")
        }
    }
}
