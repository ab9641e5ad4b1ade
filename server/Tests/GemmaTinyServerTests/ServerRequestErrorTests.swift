import Foundation
import GemmaTinyServer
import XCTest

/// Requests that are wrong in small ways get an answer that says what is wrong (issue 16, the
/// smaller items).
final class ServerRequestErrorTests: XCTestCase {
    func testNullBodyIsNotAnObject() async throws {
        let server = try await TestServer.start()
        let r = try await server.post("/v1/chat/completions", body: "null")
        XCTAssertEqual(r.status, 400, r.body)
        XCTAssertEqual(r.error["message"] as? String, "The request body must be a JSON object, not null")
        XCTAssertEqual(r.error["code"] as? String, "invalid_json")
        try await server.stop()
    }

    func testInvalidUTF8AndLoneSurrogatesSayWhatIsWrong() async throws {
        let server = try await TestServer.start()
        let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nConnection: close\r\n"
        let body = Array(#"{"messages":[{"role":"user","content":"caf"#.utf8) + [0xC3, 0x28] + Array(#""}]}"#.utf8)
        let c = try RawConnection(port: server.address.port!)
        c.sendBytes(Array((head + "Content-Length: \(body.count)\r\n\r\n").utf8) + body)
        c.read { _ in false }
        c.close()
        let bad = try HTTPTestClient.parse(c.received)
        XCTAssertEqual(bad.status, 400, bad.body)
        XCTAssertEqual(bad.error["message"] as? String, "The request body is not valid UTF-8 (at byte 42)")

        let surrogate = try await server.post("/v1/chat/completions", body: #"{"messages":[{"role":"user","content":"a\ud800b"}]}"#)
        XCTAssertEqual(surrogate.status, 400, surrogate.body)
        XCTAssertEqual(surrogate.error["param"] as? String, "messages[0].content")
        XCTAssertTrue((surrogate.error["message"] as? String ?? "").contains("unpaired UTF-16 surrogate"), surrogate.body)
        // A proper pair is fine.
        let pair = try await server.post("/v1/chat/completions", body: #"{"messages":[{"role":"user","content":"a\ud83d\ude00"}],"max_tokens":1}"#)
        XCTAssertEqual(pair.status, 200, pair.body)
        try await server.stop()
    }

    func testLogprobsAreRefusedLikeN() async throws {
        let server = try await TestServer.start()
        let chat = #""messages":[{"role":"user","content":"Hi"}],"max_tokens":1"#
        for (path, body, param) in [
            ("/v1/chat/completions", #"{\#(chat),"logprobs":true}"#, "logprobs"),
            ("/v1/chat/completions", #"{\#(chat),"logprobs":true,"top_logprobs":2}"#, "top_logprobs"),
            ("/v1/completions", #"{"prompt":"Hi","max_tokens":1,"logprobs":3}"#, "logprobs"),
        ] {
            let r = try await server.post(path, body: body)
            XCTAssertEqual(r.status, 400, body)
            XCTAssertEqual(r.error["param"] as? String, param, r.body)
            XCTAssertEqual(r.error["message"] as? String, "\(param) is not supported")
        }
        for (path, body) in [("/v1/chat/completions", #"{\#(chat),"logprobs":false}"#),
                             ("/v1/completions", #"{"prompt":"Hi","max_tokens":1,"logprobs":0,"top_logprobs":null}"#)] {
            let r = try await server.post(path, body: body)
            XCTAssertEqual(r.status, 200, r.body)
        }
        try await server.stop()
    }

    func testHeadAndWrongMethods() async throws {
        let server = try await TestServer.start()
        let head = try await server.raw("HEAD /health HTTP/1.1\r\nHost: localhost")
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.body, "")
        let get = try await server.get("/v1/chat/completions")
        XCTAssertEqual(get.status, 405, get.body)
        XCTAssertEqual(get.headers["allow"], "POST")
        XCTAssertEqual(get.error["code"] as? String, "method_not_allowed")
        let post = try await server.post("/health", body: "{}")
        XCTAssertEqual(post.status, 405, post.body)
        XCTAssertEqual(post.headers["allow"], "GET, HEAD")
        let unknown = try await server.get("/nowhere")
        XCTAssertEqual(unknown.status, 404)
        try await server.stop()
    }

    /// `Expect: 100-continue` is answered before the client sends its body.
    func testExpectContinueIsAnswered() async throws {
        let server = try await TestServer.start()
        let body = #"{"prompt":"Hi","max_tokens":2}"#
        let c = try RawConnection(port: server.address.port!)
        defer { c.close() }
        c.sendRaw("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  + "Content-Length: \(body.utf8.count)\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        XCTAssertTrue(c.read { $0.contains("\r\n\r\n") }, "no interim response")
        XCTAssertTrue(c.received.hasPrefix("HTTP/1.1 100 Continue\r\n\r\n"), c.received)
        c.sendRaw(body)
        XCTAssertTrue(c.read { $0.contains("\"finish_reason\"") }, c.received)
        XCTAssertTrue(c.received.contains("HTTP/1.1 200"), c.received)
        try await server.stop()
    }

    /// A request refused on its headers gets its answer instead of `100 Continue`, so the client
    /// never sends the body: a wrong API key (401), a Content-Length over the limit (413), a body
    /// that is not JSON (415).
    func testExpectContinueIsNotSentToARefusedRequest() async throws {
        let server = try await TestServer.start(maxBodyBytes: 1000, apiKey: "secret")
        let body = #"{"prompt":"Hi","max_tokens":2}"#
        let cases: [(headers: String, status: String)] = [
            ("Authorization: Bearer wrong\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)", "401"),
            ("Authorization: Bearer secret\r\nContent-Type: application/json\r\nContent-Length: 5000", "413"),
            ("Authorization: Bearer secret\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)", "415"),
        ]
        for (headers, status) in cases {
            let c = try RawConnection(port: server.address.port!)
            defer { c.close() }
            c.sendRaw("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\n\(headers)\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
            XCTAssertTrue(c.read { $0.contains("\r\n\r\n") }, "no response for \(status)")
            XCTAssertTrue(c.received.hasPrefix("HTTP/1.1 \(status) "), c.received)
            XCTAssertFalse(c.received.contains("100 Continue"), c.received)
        }
        // A request that passes still gets the invitation, then its answer.
        let c = try RawConnection(port: server.address.port!)
        defer { c.close() }
        c.sendRaw("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer secret\r\nContent-Type: application/json\r\n"
                  + "Content-Length: \(body.utf8.count)\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        XCTAssertTrue(c.read { $0.contains("\r\n\r\n") }, "no interim response")
        XCTAssertTrue(c.received.hasPrefix("HTTP/1.1 100 Continue\r\n\r\n"), c.received)
        c.sendRaw(body)
        XCTAssertTrue(c.read { $0.contains("\"finish_reason\"") }, c.received)
        try await server.stop()
    }

    /// A port in use: one line naming the address and the reason.
    func testBindErrorNamesTheAddress() async throws {
        let first = try await TestServer.start()
        let port = first.address.port!
        let engine = first.engine
        let second = GemmaServer(engine: engine, configuration: GemmaServerConfiguration(address: .tcp(host: "127.0.0.1", port: port)))
        do {
            try await second.run(gracefulShutdownSignals: [])
            XCTFail("a second server bound the same port")
        } catch {
            XCTAssertEqual("\(error)", "cannot listen on 127.0.0.1:\(port): Address already in use")
        }
        try await first.stop()
    }
}
