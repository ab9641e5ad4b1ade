import Foundation
import GemmaTinyServer
import XCTest

extension TestServer {
    /// One request with extra header lines (`Name: value`); a body is sent as JSON.
    func request(_ method: String, _ path: String, headers: [String] = [], body: String? = nil) async throws -> Reply {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: localhost"
        if body != nil { head += "\r\nContent-Type: application/json" }
        for header in headers { head += "\r\n" + header }
        return try await raw(head, body: body ?? "")
    }
}

/// `--api-key` (issue 15, part 3): every endpoint but /health needs `Authorization: Bearer KEY`.
final class ServerAPIKeyTests: XCTestCase {
    static let key = "sk-test-0123456789abcdef"
    static let bearer = "Authorization: Bearer \(key)"
    static let chat = #"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":2}"#
    static let streamedChat = #"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":2,"stream":true}"#
    static let completion = #"{"prompt":"Hi","max_tokens":2}"#

    /// A 401 as OpenAI sends it: `{"error":{"message","type","param":null,"code":"invalid_api_key"}}`,
    /// with a `WWW-Authenticate: Bearer` challenge, and without the key sent.
    func assertUnauthorized(_ r: TestServer.Reply, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, 401, "\(what): \(r.body)", file: file, line: line)
        XCTAssertEqual(r.headers["content-type"], "application/json", what, file: file, line: line)
        XCTAssertEqual(r.error["code"] as? String, "invalid_api_key", "\(what): \(r.body)", file: file, line: line)
        XCTAssertEqual(r.error["type"] as? String, "invalid_request_error", what, file: file, line: line)
        XCTAssertTrue(r.error["param"] is NSNull, "\(what): param must be an explicit null: \(r.body)", file: file, line: line)
        XCTAssertFalse((r.error["message"] as? String ?? "").isEmpty, what, file: file, line: line)
        XCTAssertTrue(r.headers["www-authenticate"]?.hasPrefix("Bearer") ?? false,
                      "\(what): WWW-Authenticate \(r.headers["www-authenticate"] ?? "missing")", file: file, line: line)
    }

    func testNoKeyGets401OnEveryEndpointButHealth() async throws {
        let server = try await TestServer.start(apiKey: Self.key)
        for (method, path, body) in [("GET", "/v1/models", nil), ("GET", "/v1/models/tiny-gemma", nil),
                                     ("POST", "/v1/chat/completions", Self.chat), ("POST", "/v1/chat/completions", Self.streamedChat),
                                     ("POST", "/v1/completions", Self.completion), ("GET", "/v1/nothing", nil),
                                     ("GET", "/v1/chat/completions", nil)] {
            let r = try await server.request(method, path, body: body)
            assertUnauthorized(r, "\(method) \(path)")
            XCTAssertEqual(r.headers["www-authenticate"], "Bearer")
        }
        // /health is for monitoring: open, GET and HEAD.
        let health = try await server.request("GET", "/health")
        XCTAssertEqual(health.status, 200, health.body)
        XCTAssertEqual(health.json["status"] as? String, "ok")
        let head = try await server.request("HEAD", "/health")
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(server.engine.stats.completedGenerations + server.engine.stats.cancelledGenerations, 0)
        try await server.stop()
    }

    func testWrongKeyOrSchemeGets401() async throws {
        let server = try await TestServer.start(apiKey: Self.key)
        let key = Self.key
        let basic = Data(":\(key)".utf8).base64EncodedString()
        for headers in [["Authorization: Bearer sk-wrong"], ["Authorization: Bearer \(key)x"],
                        ["Authorization: Bearer \(key.dropLast())"], ["Authorization: Bearer \(key.dropLast())g"],
                        ["Authorization: Bearer X\(key.dropFirst())"], ["Authorization: Bearer \(key.uppercased())"],
                        ["Authorization: Basic \(basic)"], ["Authorization: Basic \(key)"], ["Authorization: Token \(key)"],
                        ["Authorization: \(key)"], ["Authorization: Bearer"], ["Authorization: Bearer  "],
                        ["X-Api-Key: \(key)"], ["Api-Key: \(key)"],
                        ["Authorization: Bearer sk-wrong", Self.bearer]] {
            let chat = try await server.request("POST", "/v1/chat/completions", headers: headers, body: Self.chat)
            assertUnauthorized(chat, "\(headers)")
            let models = try await server.request("GET", "/v1/models", headers: headers)
            assertUnauthorized(models, "\(headers)")
            XCTAssertFalse(models.body.contains(key), "the key is not echoed: \(models.body)")
        }
        let wrong = try await server.request("GET", "/v1/models", headers: ["Authorization: Bearer sk-wrong"])
        XCTAssertEqual(wrong.headers["www-authenticate"], #"Bearer error="invalid_token""#)
        XCTAssertFalse(wrong.body.contains("sk-wrong"), wrong.body)
        XCTAssertEqual(server.engine.stats.completedGenerations + server.engine.stats.cancelledGenerations, 0)
        try await server.stop()
    }

    func testRightKeyIsAccepted() async throws {
        let server = try await TestServer.start(apiKey: Self.key)
        let models = try await server.request("GET", "/v1/models", headers: [Self.bearer])
        XCTAssertEqual(models.status, 200, models.body)
        XCTAssertEqual((models.json["data"] as? [[String: Any]])?.first?["id"] as? String, "tiny-gemma")
        let one = try await server.request("GET", "/v1/models/tiny-gemma", headers: [Self.bearer])
        XCTAssertEqual(one.status, 200, one.body)
        let chat = try await server.request("POST", "/v1/chat/completions", headers: [Self.bearer], body: Self.chat)
        XCTAssertEqual(chat.status, 200, chat.body)
        XCTAssertEqual(chat.json["object"] as? String, "chat.completion")
        let completion = try await server.request("POST", "/v1/completions", headers: [Self.bearer], body: Self.completion)
        XCTAssertEqual(completion.status, 200, completion.body)
        XCTAssertEqual(completion.json["object"] as? String, "text_completion")
        let stream = try await server.request("POST", "/v1/chat/completions", headers: [Self.bearer], body: Self.streamedChat)
        XCTAssertEqual(stream.status, 200, stream.body)
        XCTAssertEqual(sseEvents(stream.body).last, "[DONE]")
        // The scheme is case-insensitive (RFC 9110); the key is not.
        let lower = try await server.request("GET", "/v1/models", headers: ["authorization: bearer \(Self.key)"])
        XCTAssertEqual(lower.status, 200, lower.body)
        // Past the key, the other errors are as before: an unknown path is 404, a bad body 400.
        let unknown = try await server.request("GET", "/v1/nothing", headers: [Self.bearer])
        XCTAssertEqual(unknown.status, 404, unknown.body)
        let bad = try await server.request("POST", "/v1/completions", headers: [Self.bearer], body: "{")
        XCTAssertEqual(bad.status, 400, bad.body)
        let health = try await server.request("GET", "/health", headers: [Self.bearer])
        XCTAssertEqual(health.status, 200, health.body)
        XCTAssertEqual(server.engine.stats.completedGenerations, 3)
        try await server.stop()
    }

    /// The 401 comes as soon as the headers are in: a client without the key cannot make the
    /// server wait for (or read) a body. With the key, the same request waits for its body.
    func testKeyIsCheckedBeforeTheBody() async throws {
        let server = try await TestServer.start(apiKey: Self.key)
        let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            + "Content-Length: 100000\r\nConnection: close\r\n"
        let start = Date()
        let without = try RawConnection(port: server.address.port!)
        without.sendRaw(head + "\r\n{\"messages\":")
        XCTAssertTrue(without.read { $0.contains("\r\n\r\n") }, without.received)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        XCTAssertTrue(without.received.hasPrefix("HTTP/1.1 401"), without.received)
        without.close()
        let with = try RawConnection(port: server.address.port!)
        with.sendRaw(head + Self.bearer + "\r\n\r\n{\"messages\":")
        XCTAssertFalse(with.closedByPeer(within: 1))
        XCTAssertEqual(with.received, "", "the right key waits for the body")
        with.close()
        try await server.stop()
    }

    /// Browsers send preflights without credentials: they are still answered for a
    /// --cors-origin, and the page can read a 401 (it carries the CORS headers).
    func testCORSPreflightNeedsNoKey() async throws {
        let origin = "http://localhost:3000"
        let server = try await TestServer.start(policy: RequestPolicy(corsOrigins: [origin]), apiKey: Self.key)
        let preflight = try await server.request("OPTIONS", "/v1/chat/completions", headers: [
            "Origin: \(origin)", "Access-Control-Request-Method: POST", "Access-Control-Request-Headers: authorization, content-type"])
        XCTAssertEqual(preflight.status, 204, preflight.body)
        XCTAssertEqual(preflight.headers["access-control-allow-origin"], origin)
        XCTAssertTrue(preflight.headers["access-control-allow-headers"]?.lowercased().contains("authorization") ?? false)
        let ok = try await server.request("POST", "/v1/chat/completions", headers: ["Origin: \(origin)", Self.bearer], body: Self.chat)
        XCTAssertEqual(ok.status, 200, ok.body)
        XCTAssertEqual(ok.headers["access-control-allow-origin"], origin)
        let wrong = try await server.request("POST", "/v1/chat/completions", headers: ["Origin: \(origin)", "Authorization: Bearer no"],
                                             body: Self.chat)
        assertUnauthorized(wrong, "wrong key from an allowed origin")
        XCTAssertEqual(wrong.headers["access-control-allow-origin"], origin)
        let evil = try await server.request("POST", "/v1/chat/completions", headers: ["Origin: http://evil.example.com"], body: Self.chat)
        assertUnauthorized(evil, "another origin")
        XCTAssertNil(evil.headers["access-control-allow-origin"])
        let evilPreflight = try await server.request("OPTIONS", "/v1/chat/completions", headers: ["Origin: http://evil.example.com"])
        XCTAssertEqual(evilPreflight.status, 403, evilPreflight.body)
        try await server.stop()
    }

    /// Without a key the server ignores Authorization (OpenAI clients always send one).
    func testWithoutAKeyAuthorizationIsIgnored() async throws {
        let server = try await TestServer.start()
        let r = try await server.request("POST", "/v1/chat/completions", headers: ["Authorization: Bearer sk-no-key-required"],
                                         body: Self.chat)
        XCTAssertEqual(r.status, 200, r.body)
        let none = try await server.request("GET", "/v1/models")
        XCTAssertEqual(none.status, 200, none.body)
        try await server.stop()
    }
}
