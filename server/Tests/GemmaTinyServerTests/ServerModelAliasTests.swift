import Foundation
import GemmaTinyServer
import XCTest

/// `--model-alias` (issue 15, part 3): other names for the model, for clients hard-wired to one.
final class ServerModelAliasTests: XCTestCase {
    func chatBody(model: String, stream: Bool = false) -> String {
        #"{"model":"\#(model)","messages":[{"role":"user","content":"Hi"}],"max_tokens":2,"stream":\#(stream)}"#
    }

    func testAliasesAreAcceptedAndListed() async throws {
        let server = try await TestServer.start(modelAliases: ["gpt-4o-mini", "gpt-3.5-turbo", "tiny-gemma", "gpt-4o-mini"])
        let models = try await server.get("/v1/models")
        XCTAssertEqual(models.status, 200, models.body)
        let ids = (models.json["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
        XCTAssertEqual(ids, ["tiny-gemma", "gpt-4o-mini", "gpt-3.5-turbo"], "the id first, each alias once")
        let alias = try await server.get("/v1/models/gpt-4o-mini")
        XCTAssertEqual(alias.status, 200, alias.body)
        XCTAssertEqual(alias.json["id"] as? String, "gpt-4o-mini")
        let other = try await server.get("/v1/models/gpt-4")
        XCTAssertEqual(other.status, 404, other.body)
        XCTAssertEqual(other.error["code"] as? String, "model_not_found")

        let chat = try await server.post("/v1/chat/completions", body: chatBody(model: "gpt-4o-mini"))
        XCTAssertEqual(chat.status, 200, chat.body)
        XCTAssertEqual(chat.json["model"] as? String, "tiny-gemma", "replies name the model the alias stands for")
        let stream = try await server.post("/v1/chat/completions", body: chatBody(model: "gpt-3.5-turbo", stream: true))
        XCTAssertEqual(stream.status, 200, stream.body)
        XCTAssertEqual(sseEvents(stream.body).last, "[DONE]")
        let completion = try await server.post("/v1/completions", body: #"{"model":"gpt-3.5-turbo","prompt":"Hi","max_tokens":2}"#)
        XCTAssertEqual(completion.status, 200, completion.body)
        let id = try await server.post("/v1/completions", body: #"{"model":"tiny-gemma","prompt":"Hi","max_tokens":2}"#)
        XCTAssertEqual(id.status, 200, id.body)

        // Unknown names, and names that only resemble an alias, are still 404.
        for name in ["gpt-4", "GPT-4o-mini", "gpt-4o-mini ", ""] {
            let r = try await server.post("/v1/chat/completions", body: chatBody(model: name))
            XCTAssertEqual(r.status, 404, "\(name): \(r.body)")
            XCTAssertEqual(r.error["code"] as? String, "model_not_found")
            XCTAssertEqual(r.error["param"] as? String, "model")
        }
        let unknown = try await server.post("/v1/completions", body: #"{"model":"gpt-4","prompt":"Hi"}"#)
        XCTAssertEqual(unknown.status, 404, unknown.body)
        XCTAssertEqual(server.engine.stats.completedGenerations, 4)
        try await server.stop()
    }

    func testAliasWithAKey() async throws {
        let key = ServerAPIKeyTests.key
        let server = try await TestServer.start(apiKey: key, modelAliases: ["gpt-4o-mini"])
        let noKey = try await server.request("POST", "/v1/chat/completions", body: chatBody(model: "gpt-4o-mini"))
        XCTAssertEqual(noKey.status, 401, noKey.body)
        let noKeyUnknown = try await server.request("POST", "/v1/chat/completions", body: chatBody(model: "gpt-4"))
        XCTAssertEqual(noKeyUnknown.status, 401, "without the key, not even whether a model exists: \(noKeyUnknown.body)")
        let ok = try await server.request("POST", "/v1/chat/completions", headers: [ServerAPIKeyTests.bearer],
                                          body: chatBody(model: "gpt-4o-mini"))
        XCTAssertEqual(ok.status, 200, ok.body)
        let unknown = try await server.request("POST", "/v1/chat/completions", headers: [ServerAPIKeyTests.bearer],
                                               body: chatBody(model: "gpt-4"))
        XCTAssertEqual(unknown.status, 404, unknown.body)
        XCTAssertEqual(unknown.error["code"] as? String, "model_not_found")
        let listed = try await server.request("GET", "/v1/models", headers: [ServerAPIKeyTests.bearer])
        XCTAssertEqual((listed.json["data"] as? [[String: Any]])?.count, 2, listed.body)
        XCTAssertEqual(server.engine.stats.completedGenerations, 1)
        try await server.stop()
    }
}
