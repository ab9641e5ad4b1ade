import Foundation
import GemmaConvert
@_spi(Testing) import GemmaTiny
import GemmaTinyServer
import Synchronization
import XCTest

/// The tiny fixture checkpoint converted once per test process (bf16, uncompressed), named so
/// that the model id is `tiny-gemma`.
enum ServerFixtures {
    /// The repository (this file is server/Tests/GemmaTinyServerTests/ServerTestSupport.swift).
    static let repoRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let tempDir: String = {
        let dir = NSTemporaryDirectory() + "gemma-tiny-server-tests-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "gemma-tiny-server-tests-\(getpid())") }
        return dir
    }()

    private static let cache = Mutex<GemmaModel?>(nil)

    static func model() throws -> GemmaModel {
        try cache.withLock { cached in
            if let m = cached { return m }
            let output = tempDir + "/tiny-gemma.gtm"
            let options = ConversionOptions(type: .bf16, embeddingType: .bf16, compression: .never, zstdLevel: 3,
                                            threads: 0, overwrite: true)
            _ = try Converter.convert(checkpoint: repoRoot.appendingPathComponent("fixtures/tiny-gemma").path,
                                      output: output, options: options)
            let m = try GemmaModel.load(path: output)
            cached = m
            return m
        }
    }
}

/// A server on an ephemeral loopback port (or a Unix socket), stopped by `stop()`.
final class TestServer: Sendable {
    let engine: GemmaEngine
    let server: GemmaServer
    let address: ServerAddress
    private let task: Task<Void, any Error>

    var baseURL: String { "http://127.0.0.1:\(address.port ?? 0)" }

    static func start(parallel: Int = 2, maxQueue: Int = 8, maxBodyBytes: Int = 1 << 20,
                      grace: Duration = .seconds(5), stepDelay: Duration = .zero, unixSocket: String? = nil,
                      limits: ConnectionLimits = ConnectionLimits(),
                      policy: RequestPolicy = RequestPolicy(), apiKey: String? = nil,
                      modelAliases: [String] = []) async throws -> TestServer {
        var options = GemmaEngine.Options(threads: 1, contextLength: 256, maxConcurrentGenerations: parallel,
                                          prefillChunkSize: 8)
        options.stepDelay = stepDelay
        let path = try ServerFixtures.model().file.path
        options.name = GemmaEngine.modelName(forPath: path)
        let engine = try GemmaEngine(model: try ServerFixtures.model(), options: options)
        let configuration = GemmaServerConfiguration(
            address: unixSocket.map { .unixSocket(path: $0) } ?? .tcp(host: "127.0.0.1", port: 0),
            parallel: parallel, maxQueue: maxQueue, maxBodyBytes: maxBodyBytes, shutdownGracePeriod: grace,
            defaultSampling: .greedy, connectionLimits: limits, requestPolicy: policy, apiKey: apiKey,
            modelAliases: modelAliases)
        let server = GemmaServer(engine: engine, configuration: configuration)
        let (addresses, continuation) = AsyncStream<ServerAddress>.makeStream()
        let task = Task {
            defer { continuation.finish() }
            try await server.run(gracefulShutdownSignals: []) { continuation.yield($0) }
        }
        var iterator = addresses.makeAsyncIterator()
        guard let address = await iterator.next() else {
            try await task.value
            throw TestFailure("the server did not start")
        }
        return TestServer(engine: engine, server: server, address: address, task: task)
    }

    private init(engine: GemmaEngine, server: GemmaServer, address: ServerAddress, task: Task<Void, any Error>) {
        self.engine = engine
        self.server = server
        self.address = address
        self.task = task
    }

    /// Graceful shutdown; returns when `run` has.
    func stop() async throws {
        await server.shutdown()
        try await task.value
        await engine.shutdown()
    }

    /// Waits until `run` returns (after a shutdown started elsewhere).
    func waitUntilStopped() async throws { try await task.value }

    // MARK: Requests

    struct Reply: Sendable {
        var status: Int
        var headers: [String: String]
        var body: String
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:] }
        var error: [String: Any] { json["error"] as? [String: Any] ?? [:] }
    }

    func get(_ path: String) async throws -> Reply {
        try await HTTPTestClient.request(port: address.port!, method: "GET", path: path)
    }

    func post(_ path: String, json: [String: Any]) async throws -> Reply {
        try await post(path, body: String(decoding: try JSONSerialization.data(withJSONObject: json), as: UTF8.self))
    }

    /// Sends `head` (request line and headers, without the blank line) and `body` as they are,
    /// with `Content-Length` and `Connection: close` added; returns the reply.
    func raw(_ head: String, body: String = "") async throws -> Reply {
        let port = address.port!
        return try await HTTPTestClient.onThread {
            let c = try RawConnection(port: port)
            defer { c.close() }
            c.sendRaw(head + "\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body)
            c.read { _ in false }
            return try HTTPTestClient.parse(c.received)
        }
    }

    func post(_ path: String, body: String, chunked: Bool = false) async throws -> Reply {
        try await HTTPTestClient.request(port: address.port!, method: "POST", path: path, body: body, chunked: chunked)
    }
}

/// A minimal HTTP/1.1 client for the tests (one request per connection, `Connection: close`),
/// on POSIX sockets, each request on a thread of its own so blocking reads never hold up the
/// cooperative pool. Enough for JSON and server-sent events; no dependency on an HTTP stack.
enum HTTPTestClient {
    static func request(port: Int, method: String, path: String, body: String = "",
                        chunked: Bool = false) async throws -> TestServer.Reply {
        try await onThread {
            let c = try RawConnection(port: port)
            defer { c.close() }
            c.send(method: method, path: path, body: body, chunked: chunked, close: true)
            c.read { _ in false }  // to the end of the stream
            return try parse(c.received)
        }
    }

    /// Runs blocking work on a new thread.
    static func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    static func parse(_ raw: String) throws -> TestServer.Reply {
        guard let split = raw.range(of: "\r\n\r\n") else { throw TestFailure("no complete response: \(raw)") }
        let lines = raw[..<split.lowerBound].components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw TestFailure("bad status line: \(lines[0])") }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = String(raw[split.upperBound...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" { body = try dechunk(body) }
        return TestServer.Reply(status: status, headers: headers, body: body)
    }

    static func dechunk(_ s: String) throws -> String {
        var bytes = Array(s.utf8)[...]
        var out: [UInt8] = []
        while true {
            guard let lineEnd = bytes.firstIndex(of: 13) else { throw TestFailure("truncated chunked body") }
            let sizeText = String(decoding: bytes[..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else {
                throw TestFailure("bad chunk size \(sizeText)")
            }
            bytes = bytes[(lineEnd + 2)...]
            if size == 0 { return String(decoding: out, as: UTF8.self) }
            guard bytes.count >= size + 2 else { throw TestFailure("truncated chunk") }
            out += bytes.prefix(size)
            bytes = bytes.dropFirst(size + 2)
        }
    }
}

/// Server-sent events of a streamed reply: the `data:` payloads in order.
func sseEvents(_ body: String) -> [String] {
    body.components(separatedBy: "\n\n").compactMap { block in
        let line = block.trimmingCharacters(in: .whitespacesAndNewlines)
        guard line.hasPrefix("data: ") else { return nil }
        return String(line.dropFirst(6))
    }
}

func jsonObject(_ s: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(s.utf8))) as? [String: Any] ?? [:]
}

/// A blocking HTTP/1.1 client on a raw socket, for what a high-level client hides: closing the
/// connection in the middle of a stream, and Unix sockets.
final class RawConnection {
    let fd: Int32
    private(set) var received = ""

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket() failed") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { Glibc.close(fd); throw TestFailure("connect() failed: \(errno)") }
        setTimeout()
    }

    init(unixSocket path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket() failed") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { Glibc.close(fd); throw TestFailure("connect() to \(path) failed: \(errno)") }
        setTimeout()
    }

    private func setTimeout() {
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(method: String = "POST", path: String, body: String = "", chunked: Bool = false, close: Bool = false) {
        var request = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\n"
        if close { request += "Connection: close\r\n" }
        if method == "POST" {
            request += "Content-Type: application/json\r\n"
            if chunked {
                var bytes = Array((request + "Transfer-Encoding: chunked\r\n\r\n").utf8)
                var rest = Array(body.utf8)[...]
                while !rest.isEmpty {
                    let piece = rest.prefix(512)
                    bytes += Array((String(piece.count, radix: 16) + "\r\n").utf8) + piece + Array("\r\n".utf8)
                    rest = rest.dropFirst(piece.count)
                }
                write(bytes + Array("0\r\n\r\n".utf8))
                return
            }
            request += "Content-Length: \(body.utf8.count)\r\n"
        }
        write(Array((request + "\r\n" + body).utf8))
    }

    /// Sends `text` as it is (a partial request, say).
    func sendRaw(_ text: String) { write(Array(text.utf8)) }

    /// Sends bytes as they are (invalid UTF-8, say).
    func sendBytes(_ bytes: [UInt8]) { write(bytes) }

    /// Closes the sending side only (the peer reads end of file; this side can still read).
    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// True when the peer has closed the connection: a read returns end of file (or a reset)
    /// within `seconds`. Reads and keeps whatever arrives first.
    func closedByPeer(within seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 50) > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n <= 0 { return true }
            received += String(decoding: buffer[0..<n], as: UTF8.self)
        }
        return false
    }

    private func write(_ bytes: [UInt8]) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n <= 0 { return }
            done += n
        }
    }

    /// Reads until `condition` holds on everything received, the peer closes, or the timeout.
    @discardableResult
    func read(until condition: (String) -> Bool) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !condition(received) {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n <= 0 { return condition(received) }
            received += String(decoding: buffer[0..<n], as: UTF8.self)
        }
        return true
    }

    func close() { Glibc.close(fd) }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Polls until `condition` holds or `seconds` pass.
func eventually(seconds: Double = 10, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}
