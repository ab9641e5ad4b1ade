import Foundation
@_spi(Testing) import GemmaTiny
import GemmaTinyServer
import XCTest

/// Clients that leave, stall or crowd the server (issue 16): none of them may keep it
/// generating for nobody, hold a slot or a queue place, or keep it from stopping.
final class ServerHostileClientTests: XCTestCase {
    func health(_ server: TestServer) async throws -> (busy: Int, waiting: Int) {
        let json = try await server.get("/health").json
        return ((json["slots"] as? [String: Any])?["busy"] as? Int ?? -1,
                (json["queue"] as? [String: Any])?["waiting"] as? Int ?? -1)
    }

    // MARK: Item 1: closed peers are noticed, streaming or not, running or queued

    /// A non-streaming request whose client closes its socket normally (FIN, no reset) is
    /// cancelled, not generated to the end for nobody.
    func testClosedClientCancelsANonStreamingGeneration() async throws {
        let server = try await TestServer.start(parallel: 1, stepDelay: .milliseconds(10))
        let client = try RawConnection(port: server.address.port!)
        client.send(path: "/v1/completions", body: #"{"prompt":"The cat sat.","max_tokens":4000,"temperature":0}"#)
        let started = await eventually { server.engine.stats.generatedTokens > 2 }
        XCTAssertTrue(started)
        client.close()
        let cancelled = await eventually(seconds: 5) { server.engine.stats.cancelledGenerations == 1 }
        XCTAssertTrue(cancelled, "the generation went on after the client closed")
        XCTAssertLessThan(server.engine.stats.generatedTokens, 150)
        XCTAssertEqual(server.engine.stats.completedGenerations, 0)
        try await server.stop()
    }

    /// The same over a Unix socket.
    func testClosedClientOnAUnixSocketCancelsItsGeneration() async throws {
        let path = ServerFixtures.tempDir + "/fin-\(UUID().uuidString.prefix(8)).sock"
        let server = try await TestServer.start(parallel: 1, stepDelay: .milliseconds(5), unixSocket: path)
        let client = try RawConnection(unixSocket: path)
        client.send(path: "/v1/chat/completions", body: #"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":4000}"#)
        let started = await eventually { server.engine.stats.generatedTokens > 2 }
        XCTAssertTrue(started)
        client.close()
        let cancelled = await eventually(seconds: 5) { server.engine.stats.cancelledGenerations == 1 }
        XCTAssertTrue(cancelled, "the generation went on after the client closed")
        XCTAssertLessThan(server.engine.stats.generatedTokens, 150)
        try await server.stop()
    }

    /// Half-closing (shutdown of the client's sending side) counts as leaving too.
    func testHalfClosedClientCancelsAStreamingGeneration() async throws {
        let server = try await TestServer.start(parallel: 1, stepDelay: .milliseconds(5))
        let client = try RawConnection(port: server.address.port!)
        client.send(path: "/v1/completions", body: #"{"prompt":"The cat sat.","max_tokens":4000,"stream":true}"#)
        XCTAssertTrue(client.read { $0.contains("data: ") })
        client.shutdownWrite()
        let cancelled = await eventually(seconds: 5) { server.engine.stats.cancelledGenerations == 1 }
        XCTAssertTrue(cancelled, "the generation went on after the client half-closed")
        XCTAssertTrue(client.closedByPeer(within: 5))
        client.close()
        try await server.stop()
    }

    /// Clients that close while queued give their places back at once: /health no longer
    /// counts them, new clients are queued instead of getting 429, and none of them generates.
    func testQueuedClientsThatCloseLeaveTheQueue() async throws {
        // 20 ms a token: the two running streams cannot reach the end of the context (256)
        // before the test closes them.
        let server = try await TestServer.start(parallel: 2, maxQueue: 8, stepDelay: .milliseconds(20))
        let port = server.address.port!
        var running: [RawConnection] = []
        for _ in 0..<2 {
            let c = try RawConnection(port: port)
            c.send(path: "/v1/completions", body: #"{"prompt":"The cat sat.","max_tokens":4000,"stream":true}"#)
            XCTAssertTrue(c.read { $0.contains("data: ") })
            running.append(c)
        }
        var queued: [RawConnection] = []
        for _ in 0..<8 {
            let c = try RawConnection(port: port)
            c.send(path: "/v1/completions", body: #"{"prompt":"Hello","max_tokens":4000}"#)
            queued.append(c)
        }
        let full = try await eventually { try await health(server).waiting == 8 }
        XCTAssertTrue(full)
        for c in queued { c.close() }
        let emptied = try await eventually(seconds: 3) { try await health(server).waiting == 0 }
        XCTAssertTrue(emptied, "closed clients kept their places in the queue")
        // A new client waits for a slot rather than being refused.
        let next = try RawConnection(port: port)
        next.send(path: "/v1/completions", body: #"{"prompt":"Hello","max_tokens":3}"#)
        let waits = try await eventually { try await health(server).waiting == 1 }
        XCTAssertTrue(waits, "a new client was not queued: \(next.received)")
        for c in running { c.close() }
        XCTAssertTrue(next.read { $0.contains("\"finish_reason\"") }, next.received)
        XCTAssertTrue(next.received.hasPrefix("HTTP/1.1 200"), next.received)
        next.close()
        let stopped = await eventually { server.engine.stats.cancelledGenerations == 2 }
        XCTAssertTrue(stopped)
        XCTAssertEqual(server.engine.stats.completedGenerations, 1, "only the last client's request ran to the end")
        try await server.stop()
    }

    // MARK: Item 3: slow and idle clients time out; a connection limit

    static let quick = ConnectionLimits(headerTimeout: .milliseconds(300), bodyTimeout: .milliseconds(300),
                                        idleTimeout: .milliseconds(500), maxConnections: 256)

    func testHalfSentHeadersGet408() async throws {
        let server = try await TestServer.start(limits: Self.quick)
        let client = try RawConnection(port: server.address.port!)
        client.sendRaw("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-")
        let start = Date()
        XCTAssertTrue(client.closedByPeer(within: 5), "a half-sent header kept the connection open")
        XCTAssertLessThan(Date().timeIntervalSince(start), 3)
        XCTAssertTrue(client.received.hasPrefix("HTTP/1.1 408"), client.received)
        XCTAssertTrue(client.received.contains("\"code\":\"request_timeout\""), client.received)
        client.close()
        try await server.stop()
    }

    func testHalfSentBodyGets408() async throws {
        let server = try await TestServer.start(limits: Self.quick)
        let client = try RawConnection(port: server.address.port!)
        client.sendRaw("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"pro")
        XCTAssertTrue(client.closedByPeer(within: 5), "a half-sent body kept the connection open")
        XCTAssertTrue(client.received.hasPrefix("HTTP/1.1 408"), client.received)
        client.close()
        try await server.stop()
    }

    func testIdleConnectionsAreClosed() async throws {
        let server = try await TestServer.start(limits: Self.quick)
        // Never sends anything.
        let silent = try RawConnection(port: server.address.port!)
        XCTAssertTrue(silent.closedByPeer(within: 5), "an idle connection stayed open")
        XCTAssertEqual(silent.received, "", "an idle connection is closed without a reply")
        silent.close()
        // Keep-alive: one request, then nothing.
        let keepAlive = try RawConnection(port: server.address.port!)
        keepAlive.send(method: "GET", path: "/health")
        XCTAssertTrue(keepAlive.read { $0.contains("\"status\":\"ok\"") }, keepAlive.received)
        XCTAssertTrue(keepAlive.closedByPeer(within: 5), "an idle keep-alive connection stayed open")
        keepAlive.close()
        // A generation longer than every timeout is not cut.
        let slow = try await TestServer.start(stepDelay: .milliseconds(20), limits: Self.quick)
        let reply = try await slow.post("/v1/completions", json: ["prompt": "The cat sat.", "max_tokens": 60, "temperature": 0])
        XCTAssertEqual(reply.status, 200, reply.body)
        XCTAssertEqual((reply.json["usage"] as? [String: Any])?["completion_tokens"] as? Int, 60)
        try await slow.stop()
        try await server.stop()
    }

    func testConnectionLimit() async throws {
        var limits = ConnectionLimits()
        limits.maxConnections = 2
        let server = try await TestServer.start(limits: limits)
        let first = try RawConnection(port: server.address.port!)
        let second = try RawConnection(port: server.address.port!)
        let third = try RawConnection(port: server.address.port!)
        XCTAssertTrue(third.closedByPeer(within: 5))
        XCTAssertTrue(third.received.hasPrefix("HTTP/1.1 503"), third.received)
        XCTAssertTrue(third.received.contains("\"code\":\"too_many_connections\""), third.received)
        third.close()
        // The first two are served; once one closes, a new connection is too.
        first.send(method: "GET", path: "/health", close: true)
        first.read { _ in false }
        XCTAssertTrue(first.received.hasPrefix("HTTP/1.1 200"), first.received)
        first.close()
        second.close()
        let freed = await eventually {
            guard let c = try? RawConnection(port: server.address.port!) else { return false }
            defer { c.close() }
            c.send(method: "GET", path: "/health", close: true)
            c.read { _ in false }
            return c.received.hasPrefix("HTTP/1.1 200")
        }
        XCTAssertTrue(freed)
        try await server.stop()
    }

    // MARK: Item 2: the grace period bounds every connection

    /// SIGTERM while a client is half-way through a body: the process exits once the grace
    /// period is over instead of waiting for the client.
    func testSIGTERMWithAHalfSentBodyEndsWithinTheGracePeriod() async throws {
        let modelPath = try ServerFixtures.model().file.path
        let serve = try ServeCommandTests.ServeProcess(["-m", modelPath, "--port", "0", "-t", "1", "--shutdown-grace", "1"])
        let address = await serve.waitForAddress()
        let port = try XCTUnwrap(Int(address?.split(separator: ":").last ?? ""), serve.stderr)
        let client = try RawConnection(port: port)
        defer { client.close() }
        client.sendRaw("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\nhello")
        try await Task.sleep(for: .milliseconds(200))
        let start = Date()
        kill(serve.process.processIdentifier, SIGTERM)
        let status = await serve.waitForExit(seconds: 10)
        XCTAssertEqual(status, 0, "still running 10 s after SIGTERM with --shutdown-grace 1: \(serve.stderr)")
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
    }

    /// The serve command's flags reach the server: timeouts, connection limit, allowed hosts.
    func testServeFlagsReachTheServer() async throws {
        let modelPath = try ServerFixtures.model().file.path
        let serve = try ServeCommandTests.ServeProcess([
            "-m", modelPath, "--port", "0", "-t", "1", "--idle-timeout", "0.3", "--header-timeout", "0.3",
            "--max-connections", "2", "--allowed-host", "gemma.example.org",
        ])
        defer { kill(serve.process.processIdentifier, SIGTERM) }
        let address = await serve.waitForAddress()
        let port = try XCTUnwrap(Int(address?.split(separator: ":").last ?? ""), serve.stderr)
        let idle = try RawConnection(port: port)
        let start = Date()
        XCTAssertTrue(idle.closedByPeer(within: 5))
        XCTAssertLessThan(Date().timeIntervalSince(start), 3)
        idle.close()
        let slow = try RawConnection(port: port)
        slow.sendRaw("GET /health HTTP/1.1\r\nHo")
        XCTAssertTrue(slow.closedByPeer(within: 5))
        XCTAssertTrue(slow.received.hasPrefix("HTTP/1.1 408"), slow.received)
        slow.close()
        let first = try RawConnection(port: port), second = try RawConnection(port: port)
        let third = try RawConnection(port: port)
        XCTAssertTrue(third.closedByPeer(within: 5))
        XCTAssertTrue(third.received.hasPrefix("HTTP/1.1 503"), third.received)
        for c in [first, second, third] { c.close() }
        let allowed = try await eventually {
            guard let c = try? RawConnection(port: port) else { return false }
            defer { c.close() }
            c.sendRaw("GET /health HTTP/1.1\r\nHost: gemma.example.org:\(port)\r\nConnection: close\r\n\r\n")
            c.read { _ in false }
            return c.received.hasPrefix("HTTP/1.1 200")
        }
        XCTAssertTrue(allowed)
        let other = try RawConnection(port: port)
        other.sendRaw("GET /health HTTP/1.1\r\nHost: other.example.org\r\nConnection: close\r\n\r\n")
        other.read { _ in false }
        XCTAssertTrue(other.received.hasPrefix("HTTP/1.1 421"), other.received)
        other.close()
    }

    // MARK: Item 4: a live server's Unix socket is not taken over

    func testSecondServerOnALiveSocketIsRefused() async throws {
        let path = ServerFixtures.tempDir + "/live-\(UUID().uuidString.prefix(8)).sock"
        let first = try await TestServer.start(unixSocket: path)
        do {
            let second = try await TestServer.start(unixSocket: path)
            try await second.stop()
            XCTFail("a second server took over the socket of a live one")
        } catch {
            XCTAssertTrue("\(error)".contains("another server is listening on \(path)"), "\(error)")
        }
        let c = try RawConnection(unixSocket: path)
        c.send(method: "GET", path: "/health", close: true)
        XCTAssertTrue(c.read { $0.contains("\"status\":\"ok\"") }, "the first server lost its socket: \(c.received)")
        c.close()
        try await first.stop()
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }

    func testStaleSocketIsReplaced() async throws {
        let path = ServerFixtures.tempDir + "/stale-\(UUID().uuidString.prefix(8)).sock"
        // A socket file nobody listens on: bound, then closed without unlinking.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8))
            raw[path.utf8.count] = 0
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(rc, 0)
        close(fd)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
        let server = try await TestServer.start(unixSocket: path)
        let c = try RawConnection(unixSocket: path)
        c.send(method: "GET", path: "/health", close: true)
        XCTAssertTrue(c.read { $0.contains("\"status\":\"ok\"") }, c.received)
        c.close()
        try await server.stop()
    }

    func testTooLongSocketPathIsOneClearError() async throws {
        let path = ServerFixtures.tempDir + "/" + String(repeating: "s", count: 120) + ".sock"
        do {
            let server = try await TestServer.start(unixSocket: path)
            try await server.stop()
            XCTFail("a socket path over the limit was accepted")
        } catch {
            XCTAssertTrue("\(error)".contains("bytes long; the limit is 107"), "\(error)")
        }
    }
}
