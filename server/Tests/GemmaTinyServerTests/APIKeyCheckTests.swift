import Foundation
@testable import GemmaTinyServer
import XCTest

/// The pieces of the API key check and of the exposure warning, without a server.
final class APIKeyCheckTests: XCTestCase {
    func equal(_ a: String, _ b: String) -> Bool { APIKeyCheck.constantTimeEqual(Array(a.utf8), Array(b.utf8)) }

    func testConstantTimeEqual() {
        let key = "sk-0123456789abcdef0123456789abcdef"
        // Equal.
        XCTAssertTrue(equal(key, key))
        XCTAssertTrue(equal("a", "a"))
        // Different bytes, same length: at the start, the middle, the end.
        XCTAssertFalse(equal(key, "x" + key.dropFirst()))
        XCTAssertFalse(equal(key, key.prefix(10) + "X" + key.dropFirst(11)))
        XCTAssertFalse(equal(key, key.dropLast() + "g"))
        XCTAssertFalse(equal("a", "b"))
        // Different lengths: a prefix, an extension, a repetition (wrapping around the shorter
        // one would make "aa" equal "a").
        XCTAssertFalse(equal(key, String(key.dropLast())))
        XCTAssertFalse(equal(String(key.dropLast()), key))
        XCTAssertFalse(equal(key, key + "\0"))
        XCTAssertFalse(equal("aa", "a"))
        XCTAssertFalse(equal("a", "aa"))
        // Empty.
        XCTAssertTrue(equal("", ""))
        XCTAssertFalse(equal("", "a"))
        XCTAssertFalse(equal("a", ""))
        XCTAssertFalse(equal("", key))
        // Bytes that differ only in high bits, and NUL padding.
        XCTAssertFalse(APIKeyCheck.constantTimeEqual([0x80], [0x00]))
        XCTAssertFalse(APIKeyCheck.constantTimeEqual([0x00], []))
        XCTAssertFalse(APIKeyCheck.constantTimeEqual([], [0x00, 0x00]))
    }

    func testBearerToken() {
        XCTAssertEqual(APIKeyCheck.bearerToken("Bearer abc"), "abc")
        XCTAssertEqual(APIKeyCheck.bearerToken("bearer abc"), "abc")
        XCTAssertEqual(APIKeyCheck.bearerToken("BEARER \tabc"), "abc")
        XCTAssertNil(APIKeyCheck.bearerToken("Basic OnNrLXRlc3Q="))
        XCTAssertNil(APIKeyCheck.bearerToken("Bearer"))
        XCTAssertNil(APIKeyCheck.bearerToken("Bearer "))
        XCTAssertNil(APIKeyCheck.bearerToken("abc"))
        XCTAssertNil(APIKeyCheck.bearerToken("Bearerabc"))
        XCTAssertNil(APIKeyCheck.bearerToken(""))
    }

    func testFailures() {
        let key = Array("sk-test".utf8)
        XCTAssertNil(APIKeyCheck.failure(authorization: ["Bearer sk-test"], key: key))
        XCTAssertEqual(APIKeyCheck.failure(authorization: [], key: key)?.message, APIError.missingAPIKey.message)
        XCTAssertEqual(APIKeyCheck.failure(authorization: ["Basic sk-test"], key: key)?.message, APIError.notBearer.message)
        XCTAssertEqual(APIKeyCheck.failure(authorization: ["Bearer sk-tesT"], key: key)?.message, APIError.incorrectAPIKey.message)
        // A second header is refused even when one of them is right.
        XCTAssertNotNil(APIKeyCheck.failure(authorization: ["Bearer nope", "Bearer sk-test"], key: key))
        XCTAssertNotNil(APIKeyCheck.failure(authorization: ["Bearer sk-test", "Bearer sk-test"], key: key))
        for error in [APIError.missingAPIKey, .notBearer, .incorrectAPIKey] {
            XCTAssertEqual(error.status, .unauthorized)
            XCTAssertEqual(error.code, "invalid_api_key")
            XCTAssertEqual(error.type, "invalid_request_error")
            XCTAssertTrue(error.headers[.wwwAuthenticate]?.hasPrefix("Bearer") ?? false)
        }
    }

    func testLoopbackHosts() {
        for host in ["127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "localhost.", "api.localhost", "::1", "[::1]",
                     "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"] {
            XCTAssertTrue(NetworkExposure.isLoopback(host: host), host)
        }
        for host in ["0.0.0.0", "::", "[::]", "192.168.1.10", "10.0.0.1", "128.0.0.1", "example.com", "localhost.example.com",
                     "::ffff:10.0.0.1", "fe80::1", "", "127.0.0.1.nip.io"] {
            XCTAssertFalse(NetworkExposure.isLoopback(host: host), host)
        }
    }

    func testExposureWarning() throws {
        let warning = try XCTUnwrap(NetworkExposure.warning(for: .tcp(host: "0.0.0.0", port: 8080), apiKey: nil))
        XCTAssertTrue(warning.hasPrefix("warning: --host 0.0.0.0 "), warning)
        XCTAssertTrue(warning.contains("anyone on the network") && warning.contains("GEMMA_TINY_API_KEY"), warning)
        XCTAssertFalse(warning.contains("\n"))
        XCTAssertNotNil(NetworkExposure.warning(for: .tcp(host: "::", port: 0), apiKey: nil))
        XCTAssertNotNil(NetworkExposure.warning(for: .tcp(host: "192.168.1.10", port: 0), apiKey: nil))
        XCTAssertNil(NetworkExposure.warning(for: .tcp(host: "0.0.0.0", port: 8080), apiKey: "k"))
        XCTAssertNil(NetworkExposure.warning(for: .tcp(host: "127.0.0.1", port: 8080), apiKey: nil))
        XCTAssertNil(NetworkExposure.warning(for: .tcp(host: "localhost", port: 8080), apiKey: nil))
        XCTAssertNil(NetworkExposure.warning(for: .unixSocket(path: "/run/x.sock"), apiKey: nil))
    }
}
