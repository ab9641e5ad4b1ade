import Foundation
import XCTest

/// `gemma-tiny serve ARGS...` (the core package's command) replaces itself with the
/// gemma-tiny-serve installed beside it: the same process serves, takes the signals, and its
/// exit status and help are the server's.
final class ServeHandoffTests: XCTestCase {
    /// An installation in a temporary folder: bin/gemma-tiny (a copy, so that the folder it
    /// resolves to is bin/), bin/gemma-tiny-serve (a symlink to the build's), and
    /// link/gemma-tiny, a symlink to bin/gemma-tiny, as /usr/local/bin links would be.
    struct Install {
        let root: String
        var linkedGemmaTiny: String { root + "/link/gemma-tiny" }
        /// PATH without any gemma-tiny-serve: only what is beside gemma-tiny can be found.
        var environment: [String: String] {
            var env = ProcessInfo.processInfo.environment
            env["PATH"] = root + "/empty"
            return env
        }

        init() throws {
            let gemmaTiny = try ServerBinaries.gemmaTiny()
            let serve = try ServerBinaries.serve()
            root = ServerFixtures.tempDir + "/install-\(UUID().uuidString.prefix(8))"
            let fm = FileManager.default
            for dir in ["bin", "link", "empty"] { try fm.createDirectory(atPath: root + "/" + dir, withIntermediateDirectories: true) }
            try fm.copyItem(atPath: gemmaTiny, toPath: root + "/bin/gemma-tiny")
            XCTAssertEqual(chmod(root + "/bin/gemma-tiny", 0o755), 0)
            try fm.createSymbolicLink(atPath: root + "/bin/gemma-tiny-serve", withDestinationPath: serve)
            try fm.createSymbolicLink(atPath: linkedGemmaTiny, withDestinationPath: root + "/bin/gemma-tiny")
        }

        func remove() { try? FileManager.default.removeItem(atPath: root) }
    }

    /// Serves through the handoff: /health answers, the serving process is gemma-tiny-serve
    /// itself (exec, not a child), and SIGTERM to it stops it with status 0.
    func testGemmaTinyServeHandsOverAndServes() async throws {
        let modelPath = try ServerFixtures.model().file.path
        let install = try Install()
        defer { install.remove() }
        let serve = try ServeCommandTests.ServeProcess(
            executable: install.linkedGemmaTiny,
            arguments: ["serve", "-m", modelPath, "--port", "0", "-t", "1", "--shutdown-grace", "5"],
            environment: install.environment)
        let address = await serve.waitForAddress()
        let base = try XCTUnwrap(address, serve.stderr)
        let port = try XCTUnwrap(Int(base.split(separator: ":").last ?? ""), base)

        let health = try RawConnection(port: port)
        health.send(method: "GET", path: "/health")
        XCTAssertTrue(health.read { $0.contains("\"model\":\"tiny-gemma\"") }, health.received)
        health.close()

        let pid = serve.process.processIdentifier
        let running = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")
        XCTAssertEqual(running, URL(fileURLWithPath: try ServerBinaries.serve()).resolvingSymlinksInPath().path)

        kill(pid, SIGTERM)
        let status = await serve.waitForExit()
        XCTAssertEqual(status, 0, serve.stderr)
    }

    /// `gemma-tiny serve --help` is gemma-tiny-serve's help; a bad flag is its one-line error
    /// and its exit status.
    func testGemmaTinyServeHelpAndErrorsAreTheServers() async throws {
        let install = try Install()
        defer { install.remove() }
        let help = try run(install.linkedGemmaTiny, ["serve", "--help"], environment: install.environment)
        XCTAssertEqual(help.status, 0, help.stderr)
        XCTAssertTrue(help.stdout.contains("USAGE: gemma-tiny-serve"), help.stdout)
        XCTAssertTrue(help.stdout.contains("--unix-socket"), help.stdout)

        let arguments = ["-m", "/nonexistent/model.gtm", "--port", "70000"]
        let direct = try run(try ServerBinaries.serve(), arguments, environment: install.environment)
        let handedOver = try run(install.linkedGemmaTiny, ["serve"] + arguments, environment: install.environment)
        XCTAssertNotEqual(direct.status, 0)
        XCTAssertEqual(handedOver.status, direct.status)
        XCTAssertEqual(handedOver.stderr, direct.stderr)
        XCTAssertTrue(handedOver.stderr.hasPrefix("error: ") && handedOver.stderr.contains("--port"), handedOver.stderr)
    }

    private struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs to the end; both pipes are read before waiting so a chatty process cannot block.
    private func run(_ executable: String, _ arguments: [String], environment: [String: String]) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errData = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return Output(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }
}
