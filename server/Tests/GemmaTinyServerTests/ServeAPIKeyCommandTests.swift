import Foundation
import XCTest

/// `--api-key`, `GEMMA_TINY_API_KEY`, the warning for a server open to the network, and
/// `--model-alias`, on the real gemma-tiny-serve (and `gemma-tiny serve`) processes.
final class ServeAPIKeyCommandTests: XCTestCase {
    typealias ServeProcess = ServeCommandTests.ServeProcess
    static let key = "sk-cli-5f0c8e2b7a914d36"
    var modelPath: String!

    override func setUpWithError() throws {
        modelPath = try ServerFixtures.model().file.path
        _ = try ServerBinaries.serve()
    }

    /// The test's environment without a key of its own, plus `key` when given.
    func environment(key: String? = nil) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["GEMMA_TINY_API_KEY"] = key
        return env
    }

    func start(_ arguments: [String], key: String? = nil) throws -> ServeProcess {
        try ServeProcess(executable: try ServerBinaries.serve(), arguments: ["-m", modelPath, "-t", "1"] + arguments,
                         environment: environment(key: key))
    }

    func port(_ serve: ServeProcess) async throws -> Int {
        let address = await serve.waitForAddress()
        let base = try XCTUnwrap(address, serve.stderr)
        return try XCTUnwrap(Int(base.split(separator: ":").last ?? ""), base)
    }

    func request(port: Int, _ path: String, method: String = "GET", headers: [String] = [], body: String = "") throws -> TestServer.Reply {
        let c = try RawConnection(port: port)
        defer { c.close() }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n"
        if method == "POST" { head += "Content-Type: application/json\r\n" }
        c.sendRaw(head + headers.map { $0 + "\r\n" }.joined() + "\r\n" + body)
        c.read { _ in false }
        return try HTTPTestClient.parse(c.received)
    }

    func stop(_ serve: ServeProcess) async {
        kill(serve.process.processIdentifier, SIGTERM)
        let status = await serve.waitForExit()
        XCTAssertEqual(status, 0, serve.stderr)
    }

    /// Only `key` opens the API: no header and `wrong` get 401; /health is open.
    func assertLocked(port: Int, key: String, wrong: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let none = try request(port: port, "/v1/models")
        XCTAssertEqual(none.status, 401, none.body, file: file, line: line)
        XCTAssertEqual(none.error["code"] as? String, "invalid_api_key", none.body, file: file, line: line)
        XCTAssertEqual(none.headers["www-authenticate"], "Bearer", file: file, line: line)
        if let wrong {
            let r = try request(port: port, "/v1/models", headers: ["Authorization: Bearer \(wrong)"])
            XCTAssertEqual(r.status, 401, r.body, file: file, line: line)
        }
        let ok = try request(port: port, "/v1/models", headers: ["Authorization: Bearer \(key)"])
        XCTAssertEqual(ok.status, 200, ok.body, file: file, line: line)
        let chat = try request(port: port, "/v1/chat/completions", method: "POST", headers: ["Authorization: Bearer \(key)"],
                               body: #"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":2}"#)
        XCTAssertEqual(chat.status, 200, chat.body, file: file, line: line)
        let health = try request(port: port, "/health")
        XCTAssertEqual(health.status, 200, health.body, file: file, line: line)
    }

    func testAPIKeyFlag() async throws {
        let serve = try start(["--port", "0", "--api-key", Self.key])
        try assertLocked(port: try await port(serve), key: Self.key, wrong: "sk-other")
        XCTAssertFalse(serve.stderr.contains("warning"), serve.stderr)
        await stop(serve)
    }

    /// The environment variable: the key is not in the process's arguments (ps).
    func testAPIKeyFromEnvironment() async throws {
        let serve = try start(["--port", "0"], key: Self.key)
        let port = try await port(serve)
        let cmdline = try String(contentsOfFile: "/proc/\(serve.process.processIdentifier)/cmdline", encoding: .utf8)
        XCTAssertFalse(cmdline.contains(Self.key), cmdline)
        XCTAssertTrue(cmdline.contains("--port"), cmdline)
        try assertLocked(port: port, key: Self.key, wrong: "sk-other")
        await stop(serve)
    }

    /// `gemma-tiny serve` hands the environment (and so the key) over with the arguments.
    func testAPIKeyFromEnvironmentThroughGemmaTinyServe() async throws {
        let install = try ServeHandoffTests.Install()
        defer { install.remove() }
        var env = install.environment
        env["GEMMA_TINY_API_KEY"] = Self.key
        let serve = try ServeProcess(executable: install.linkedGemmaTiny,
                                     arguments: ["serve", "-m", modelPath, "--port", "0", "-t", "1"], environment: env)
        try assertLocked(port: try await port(serve), key: Self.key)
        await stop(serve)
    }

    /// Both given: the flag's key is the key, the environment's is not.
    func testFlagWinsOverEnvironment() async throws {
        let serve = try start(["--port", "0", "--api-key", Self.key], key: "sk-from-environment")
        try assertLocked(port: try await port(serve), key: Self.key, wrong: "sk-from-environment")
        await stop(serve)
    }

    /// Empty or unsendable keys and empty aliases: one `error:` line, a non-zero exit.
    func testBadKeysAndAliasesAreUsageErrors() async throws {
        for (arguments, key, expected) in [
            (["--api-key", ""], nil, "error: --api-key must not be empty"),
            ([], "", "error: GEMMA_TINY_API_KEY is set but empty; give it a key or unset it"),
            (["--api-key", "two words"], nil, "error: --api-key must be printable ASCII without spaces"),
            (["--api-key", "clé"], nil, "error: --api-key must be printable ASCII"),
            ([], " sk-padded", "error: GEMMA_TINY_API_KEY must be printable ASCII"),
            (["--api-key", ""], "sk-from-environment", "error: --api-key must not be empty"),
            (["--model-alias", ""], nil, "error: --model-alias must not be empty"),
            (["--model-alias", "gpt-4o-mini", "--model-alias", " "], nil, "error: --model-alias must not be empty"),
        ] as [([String], String?, String)] {
            let serve = try start(["--port", "0"] + arguments, key: key)
            let status = await serve.waitForExit()
            XCTAssertNotNil(status)
            XCTAssertNotEqual(status, 0, "\(arguments) \(key ?? "-")")
            XCTAssertTrue(serve.stderr.hasPrefix(expected), "\(arguments) \(key ?? "-"): \(serve.stderr)")
            XCTAssertEqual(serve.stderr.split(separator: "\n").count, 1, serve.stderr)
        }
    }

    /// A --host other machines can reach, without a key: one warning line at start-up, before
    /// "serving". None with a key, on loopback, or on a Unix socket.
    func testWarningWhenOpenToTheNetworkWithoutAKey() async throws {
        let socket = ServerFixtures.tempDir + "/warn-\(UUID().uuidString.prefix(8)).sock"
        let open = try start(["--host", "0.0.0.0", "--port", "0"])
        let keyed = try start(["--host", "0.0.0.0", "--port", "0"], key: Self.key)
        let loopback = try start(["--host", "127.0.0.1", "--port", "0"])
        let unix = try start(["--unix-socket", socket])
        for serve in [open, keyed, loopback, unix] {
            let address = await serve.waitForAddress()
            XCTAssertNotNil(address, serve.stderr)
        }
        let lines = open.stderr.split(separator: "\n")
        let warnings = lines.filter { $0.hasPrefix("warning:") }
        XCTAssertEqual(warnings.count, 1, open.stderr)
        XCTAssertTrue(warnings.first?.contains("--host 0.0.0.0") ?? false, open.stderr)
        XCTAssertTrue(warnings.first?.contains("anyone on the network") ?? false, open.stderr)
        XCTAssertTrue(warnings.first?.contains("GEMMA_TINY_API_KEY") ?? false, open.stderr)
        XCTAssertLessThan(lines.firstIndex { $0.hasPrefix("warning:") } ?? 99, lines.firstIndex { $0.hasPrefix("serving ") } ?? -1)
        for serve in [keyed, loopback, unix] { XCTAssertFalse(serve.stderr.contains("warning"), serve.stderr) }
        // The open server serves without a key, the keyed one does not.
        let openPort = try await port(open)
        let served = try request(port: openPort, "/v1/models")
        XCTAssertEqual(served.status, 200, served.body)
        try assertLocked(port: try await port(keyed), key: Self.key)
        for serve in [open, keyed, loopback, unix] { await stop(serve) }
    }

    /// `--model-alias` on the command line, repeated: both names work, another is 404.
    func testModelAliasFlag() async throws {
        let serve = try start(["--port", "0", "--model-alias", "gpt-4o-mini", "--model-alias", "gpt-3.5-turbo"])
        let port = try await port(serve)
        let models = try request(port: port, "/v1/models")
        XCTAssertEqual((models.json["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String },
                       ["tiny-gemma", "gpt-4o-mini", "gpt-3.5-turbo"], models.body)
        for name in ["gpt-4o-mini", "gpt-3.5-turbo"] {
            let r = try request(port: port, "/v1/chat/completions", method: "POST",
                                body: #"{"model":"\#(name)","messages":[{"role":"user","content":"Hi"}],"max_tokens":2}"#)
            XCTAssertEqual(r.status, 200, "\(name): \(r.body)")
        }
        let other = try request(port: port, "/v1/completions", method: "POST", body: #"{"model":"gpt-4","prompt":"Hi"}"#)
        XCTAssertEqual(other.status, 404, other.body)
        XCTAssertEqual(other.error["code"] as? String, "model_not_found")
        await stop(serve)
    }
}
