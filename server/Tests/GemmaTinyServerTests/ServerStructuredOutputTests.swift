import Foundation
import GemmaTinyServer
import XCTest

/// `response_format` on both endpoints, on the tiny random-weight model: whatever that model
/// prefers, a reply that ends by itself is the JSON asked for.
final class ServerStructuredOutputTests: XCTestCase {
    static let schema = #"{"type":"object","properties":{"answer":{"enum":["yes","no"]},"n":{"type":"integer"},"sure":{"type":"boolean"}},"required":["answer","n","sure"],"additionalProperties":false}"#

    func testJSONSchemaOnBothEndpoints() async throws {
        let server = try await TestServer.start()
        let format = #""response_format":{"type":"json_schema","json_schema":{"name":"a","strict":true,"schema":\#(Self.schema)}}"#
        let chat = try await server.post("/v1/chat/completions", body: #"{"messages":[{"role":"user","content":"Yes or no?"}],"max_tokens":300,"temperature":1,"seed":5,\#(format)}"#)
        XCTAssertEqual(chat.status, 200, chat.body)
        let choice = try XCTUnwrap((chat.json["choices"] as? [[String: Any]])?.first)
        XCTAssertEqual(choice["finish_reason"] as? String, "stop")
        let content = try XCTUnwrap((choice["message"] as? [String: Any])?["content"] as? String)
        try Self.check(content)

        let completion = try await server.post("/v1/completions", body: #"{"prompt":"Answer:","max_tokens":300,"temperature":0.8,"seed":9,\#(format)}"#)
        XCTAssertEqual(completion.status, 200, completion.body)
        let c = try XCTUnwrap((completion.json["choices"] as? [[String: Any]])?.first)
        XCTAssertEqual(c["finish_reason"] as? String, "stop")
        try Self.check(try XCTUnwrap(c["text"] as? String))

        // Streamed: the deltas put together are the same kind of reply.
        let streamed = try await server.post("/v1/chat/completions", body: #"{"messages":[{"role":"user","content":"Yes or no?"}],"max_tokens":300,"seed":5,"temperature":1,"stream":true,\#(format)}"#)
        XCTAssertEqual(streamed.status, 200, streamed.body)
        var text = ""
        for event in sseEvents(streamed.body) where event != "[DONE]" {
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(event.utf8)) as? [String: Any])
            let delta = (json["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any]
            text += delta?["content"] as? String ?? ""
        }
        XCTAssertEqual(text, content, "same seed, same reply, streamed or not")
        try await server.stop()
    }

    func testJSONObjectAndUnmeetableSchema() async throws {
        let server = try await TestServer.start()
        let object = try await server.post("/v1/completions", body: #"{"prompt":"x","max_tokens":400,"response_format":{"type":"json_object"}}"#)
        XCTAssertEqual(object.status, 200, object.body)
        let c = try XCTUnwrap((object.json["choices"] as? [[String: Any]])?.first)
        let text = try XCTUnwrap(c["text"] as? String)
        if c["finish_reason"] as? String == "stop" {
            XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
        } else {
            XCTAssertEqual(c["finish_reason"] as? String, "length")
            XCTAssertTrue(text.hasPrefix("{") || text.hasPrefix(" {"), text)
        }
        // 50 items cannot fit in 8 tokens: "length", and the text is not claimed complete.
        let cut = try await server.post("/v1/completions", body: #"{"prompt":"x","max_tokens":8,"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"array","items":{"type":"integer"},"minItems":50}}}}"#)
        XCTAssertEqual(cut.status, 200, cut.body)
        let cutChoice = try XCTUnwrap((cut.json["choices"] as? [[String: Any]])?.first)
        XCTAssertEqual(cutChoice["finish_reason"] as? String, "length")
        XCTAssertNil(try? JSONSerialization.jsonObject(with: Data((cutChoice["text"] as? String ?? "").utf8), options: .fragmentsAllowed))
        try await server.stop()
    }

    func testUnsupportedSchemasAre400NamingTheKeyword() async throws {
        let server = try await TestServer.start()
        let cases: [(String, String)] = [
            (#"{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"string","pattern":"^a"}}}"#, "'pattern'"),
            (#"{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"object","properties":{"x":{"type":"number","minimum":0}}}}}"#, "'minimum'"),
            (#"{"type":"json_schema","json_schema":{"name":"a","schema":{"oneOf":[{"type":"string"}]}}}"#, "'oneOf'"),
            (#"{"type":"xml"}"#, "'xml'"),
            (#"{"type":"json_schema"}"#, "json_schema object"),
            (#""json""#, "must be an object"),
        ]
        for (format, text) in cases {
            for path in ["/v1/chat/completions", "/v1/completions"] {
                let input = path.hasSuffix("chat/completions") ? #""messages":[{"role":"user","content":"x"}]"# : #""prompt":"x""#
                let r = try await server.post(path, body: #"{\#(input),"response_format":\#(format)}"#)
                XCTAssertEqual(r.status, 400, r.body)
                XCTAssertEqual(r.error["param"] as? String, "response_format", r.body)
                XCTAssertTrue((r.error["message"] as? String ?? "").contains(text), "\(format): \(r.body)")
            }
        }
        try await server.stop()
    }

    static func check(_ text: String) throws {
        let reply = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
        XCTAssertEqual(Set(reply.keys), ["answer", "n", "sure"], text)
        XCTAssertTrue(["yes", "no"].contains(reply["answer"] as? String ?? ""), text)
        XCTAssertTrue(reply["n"] is Int && reply["sure"] is Bool, text)
    }
}
