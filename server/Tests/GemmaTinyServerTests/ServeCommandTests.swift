import Foundation
import GemmaTiny
import Synchronization
import XCTest

/// The serve command itself (gemma-tiny-serve, which `gemma-tiny serve` runs): a real process,
/// real signals.
final class ServeCommandTests: XCTestCase {
    /// A running gemma-tiny-serve (or another executable), its stderr collected as it comes.
    final class ServeProcess: @unchecked Sendable {
        let process = Process()
        final class Text: Sendable {
            let value = Mutex("")
            /// Set when the pipe reaches its end (the process and its children closed stderr).
            let ended = Mutex(false)
        }
        private let errors = Text()

        convenience init(_ arguments: [String]) throws {
            try self.init(executable: try ServerBinaries.serve(), arguments: arguments)
        }

        init(executable: String, arguments: [String], environment: [String: String]? = nil) throws {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            if let environment { process.environment = environment }
            let err = Pipe()
            process.standardError = err
            process.standardOutput = FileHandle.nullDevice
            err.fileHandleForReading.readabilityHandler = { [errors] handle in
                let data = handle.availableData
                if data.isEmpty {
                    handle.readabilityHandler = nil
                    errors.ended.withLock { $0 = true }
                } else {
                    errors.value.withLock { $0 += String(decoding: data, as: UTF8.self) }
                }
            }
            try process.run()
        }

        var stderr: String { errors.value.withLock { $0 } }

        /// The address from the "serving <model> on <address>" line.
        func waitForAddress(seconds: Double = 30) async -> String? {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline && process.isRunning {
                for line in stderr.split(separator: "\n") where line.hasPrefix("serving ") {
                    if let range = line.range(of: " on ") { return String(line[range.upperBound...]) }
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return nil
        }

        func waitForExit(seconds: Double = 20) async -> Int32? {
            let deadline = Date().addingTimeInterval(seconds)
            while process.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
            if process.isRunning {
                process.terminate()
                return nil
            }
            // The exit can be seen before the last of stderr has been read: wait for its end.
            let readDeadline = Date().addingTimeInterval(5)
            while !errors.ended.withLock({ $0 }) && Date() < readDeadline { try? await Task.sleep(for: .milliseconds(10)) }
            return process.terminationStatus
        }
    }

    var modelPath: String!

    override func setUpWithError() throws {
        modelPath = try ServerFixtures.model().file.path
        _ = try ServerBinaries.serve()
    }

    /// Serves on an ephemeral port; SIGTERM lets the running request finish, then exits 0.
    func testServeCommandServesAndShutsDownOnSIGTERM() async throws {
        let serve = try ServeProcess(["-m", modelPath, "--port", "0", "-t", "1", "--temp", "0", "--shutdown-grace", "5"])
        let address = await serve.waitForAddress()
        let base = try XCTUnwrap(address, serve.stderr)
        XCTAssertTrue(base.hasPrefix("http://127.0.0.1:"), base)
        let port = try XCTUnwrap(Int(base.split(separator: ":").last ?? ""))
        XCTAssertNotEqual(port, 0)

        let health = try RawConnection(port: port)
        health.send(method: "GET", path: "/health")
        XCTAssertTrue(health.read { $0.contains("\"model\":\"tiny-gemma\"") }, health.received)
        health.close()

        let stream = try RawConnection(port: port)
        stream.send(path: "/v1/chat/completions",
                    body: #"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":20,"stream":true}"#)
        XCTAssertTrue(stream.read { $0.contains("data: ") })
        kill(serve.process.processIdentifier, SIGTERM)
        XCTAssertTrue(stream.read { $0.contains("data: [DONE]") }, stream.received)
        XCTAssertTrue(stream.received.contains("\"finish_reason\":\""), stream.received)
        stream.close()
        let status = await serve.waitForExit()
        XCTAssertEqual(status, 0, serve.stderr)
    }

    /// A Unix socket; SIGINT stops the server and removes the socket file.
    func testServeCommandOnUnixSocketStopsOnSIGINT() async throws {
        let path = ServerFixtures.tempDir + "/cli-\(getpid()).sock"
        let serve = try ServeProcess(["-m", modelPath, "--unix-socket", path, "-t", "1", "--model-id", "pocket"])
        let address = await serve.waitForAddress()
        XCTAssertEqual(address, "unix:\(path)", serve.stderr)
        let c = try RawConnection(unixSocket: path)
        c.send(method: "GET", path: "/v1/models")
        XCTAssertTrue(c.read { $0.contains("\"id\":\"pocket\"") }, c.received)
        c.close()
        kill(serve.process.processIdentifier, SIGINT)
        let status = await serve.waitForExit()
        XCTAssertEqual(status, 0, serve.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }

    /// Bad arguments and a missing model: one `error:` line, a non-zero exit, nothing served.
    func testServeCommandErrors() async throws {
        let fifo = ServerFixtures.tempDir + "/fifo-\(UUID().uuidString.prefix(8)).gtm"
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        for (arguments, expected) in [
            (["-m", fifo, "--port", "0"], "\(fifo): not a regular file"),
            (["-m", "/nonexistent/model.gtm", "--port", "0"], "/nonexistent/model.gtm"),
            (["-m", modelPath!, "--parallel", "0"], "--parallel"),
            (["-m", modelPath!, "--port", "70000"], "--port"),
            (["-m", modelPath!, "--threads", "0"], "--threads must be at least 1, got 0"),
            (["-m", modelPath!, "-t", "10000"], "--threads must be at most \(WorkerPool.maximumThreadCount), got 10000"),
            (["-m", modelPath!, "--parallel", "100000"], "--parallel must be at most 64, got 100000"),
            (["-m", modelPath!, "--model-id", ""], "--model-id must not be empty"),
            (["-m", modelPath!, "--idle-timeout", "0"], "--idle-timeout must be more than 0"),
            (["-m", modelPath!, "--max-connections", "0"], "--max-connections must be at least 1, got 0"),
            (["-m", modelPath!, "--shutdown-grace", "1e300"], "--shutdown-grace must be between 0 and 86400 seconds, got 1e+300"),
            (["-m", modelPath!, "--shutdown-grace", "inf"], "--shutdown-grace must be between 0 and 86400 seconds, got inf"),
            (["-m", modelPath!, "--unix-socket", "/tmp/" + String(repeating: "s", count: 120)], "the limit is 107"),
        ] {
            let serve = try ServeProcess(arguments)
            let status = await serve.waitForExit()
            XCTAssertNotNil(status)
            XCTAssertNotEqual(status, 0, "\(arguments)")
            XCTAssertTrue(serve.stderr.hasPrefix("error: ") && serve.stderr.contains(expected), serve.stderr)
            XCTAssertEqual(serve.stderr.split(separator: "\n").count, 1, serve.stderr)
        }
        // A port already in use.
        let first = try ServeProcess(["-m", modelPath, "--port", "0", "-t", "1"])
        let address = await first.waitForAddress()
        let port = try XCTUnwrap(address?.split(separator: ":").last.map(String.init))
        let second = try ServeProcess(["-m", modelPath, "--port", port, "-t", "1"])
        let status = await second.waitForExit()
        XCTAssertNotNil(status)
        XCTAssertNotEqual(status, 0)
        XCTAssertEqual(second.stderr, "error: serve: cannot listen on 127.0.0.1:\(port): Address already in use\n")
        kill(first.process.processIdentifier, SIGTERM)
        _ = await first.waitForExit()
    }
}
