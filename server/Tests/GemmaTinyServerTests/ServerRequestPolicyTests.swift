import Foundation
import GemmaTinyServer
import XCTest

/// Cross-site requests (issue 16, item 7): JSON bodies only, Host names the server, CORS only
/// for configured origins.
final class ServerRequestPolicyTests: XCTestCase {
    static let chat = #"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":2}"#

    func testPostNeedsJSONContentType() async throws {
        let server = try await TestServer.start()
        for type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
            let r = try await server.raw("POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: \(type)", body: Self.chat)
            XCTAssertEqual(r.status, 415, "\(type): \(r.body)")
            XCTAssertEqual(r.error["code"] as? String, "unsupported_media_type", r.body)
        }
        let none = try await server.raw("POST /v1/completions HTTP/1.1\r\nHost: localhost", body: #"{"prompt":"Hi","max_tokens":2}"#)
        XCTAssertEqual(none.status, 415, none.body)
        let withCharset = try await server.raw("POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: Application/JSON; charset=utf-8",
                                               body: Self.chat)
        XCTAssertEqual(withCharset.status, 200, withCharset.body)
        XCTAssertEqual(server.engine.stats.completedGenerations, 1, "refused requests generate nothing")
        try await server.stop()
    }

    func testHostMustNameTheServer() async throws {
        let server = try await TestServer.start(policy: RequestPolicy(allowedHosts: ["api.example.org"]))
        let port = server.address.port!
        for host in ["localhost", "localhost:\(port)", "127.0.0.1:\(port)", "[::1]:\(port)", "api.example.org", "API.example.org:443"] {
            let r = try await server.raw("GET /health HTTP/1.1\r\nHost: \(host)")
            XCTAssertEqual(r.status, 200, "\(host): \(r.body)")
        }
        for host in ["evil.example.com", "evil.example.com:\(port)", "127.0.0.1.evil.example.com", "localhost.evil.com"] {
            let r = try await server.raw("GET /health HTTP/1.1\r\nHost: \(host)")
            XCTAssertEqual(r.status, 421, "\(host): \(r.body)")
            XCTAssertEqual(r.error["code"] as? String, "host_not_allowed", r.body)
            let post = try await server.raw("POST /v1/chat/completions HTTP/1.1\r\nHost: \(host)\r\nContent-Type: application/json",
                                            body: Self.chat)
            XCTAssertEqual(post.status, 421, post.body)
        }
        XCTAssertEqual(server.engine.stats.completedGenerations, 0)
        try await server.stop()
        // "*" accepts any host.
        let open = try await TestServer.start(policy: RequestPolicy(allowedHosts: ["*"]))
        let r = try await open.raw("GET /health HTTP/1.1\r\nHost: anything.example.com")
        XCTAssertEqual(r.status, 200, r.body)
        try await open.stop()
    }

    func testCORSPreflightOnlyForConfiguredOrigins() async throws {
        let server = try await TestServer.start(policy: RequestPolicy(corsOrigins: ["http://localhost:3000"]))
        let preflight = "OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAccess-Control-Request-Method: POST\r\n"
            + "Access-Control-Request-Headers: content-type\r\nOrigin: "
        let allowed = try await server.raw(preflight + "http://localhost:3000")
        XCTAssertEqual(allowed.status, 204, allowed.body)
        XCTAssertEqual(allowed.headers["access-control-allow-origin"], "http://localhost:3000")
        XCTAssertTrue(allowed.headers["access-control-allow-headers"]?.lowercased().contains("content-type") ?? false)
        let other = try await server.raw(preflight + "http://evil.example.com")
        XCTAssertEqual(other.status, 403, other.body)
        XCTAssertNil(other.headers["access-control-allow-origin"])
        let post = try await server.raw("POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nOrigin: http://localhost:3000",
                                        body: Self.chat)
        XCTAssertEqual(post.status, 200, post.body)
        XCTAssertEqual(post.headers["access-control-allow-origin"], "http://localhost:3000")
        try await server.stop()
        // No --cors-origin: no preflight is answered.
        let plain = try await TestServer.start()
        let refused = try await plain.raw(preflight + "http://localhost:3000")
        XCTAssertEqual(refused.status, 403, refused.body)
        XCTAssertNil(refused.headers["access-control-allow-origin"])
        try await plain.stop()
    }
}
