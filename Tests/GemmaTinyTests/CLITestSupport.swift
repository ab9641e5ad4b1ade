import Foundation
import XCTest

/// The built `gemma-tiny` executable (found next to the test bundle, or at $GEMMA_TINY_BIN),
/// run to the end with its output collected.
enum GemmaTinyCLI {
    struct Output {
        var status: Int32
        /// The process id the command ran as (an exec keeps it).
        var pid: Int32 = 0
        var stdout: String
        var stderr: String
    }

    static func binary() throws -> String {
        if let path = ProcessInfo.processInfo.environment["GEMMA_TINY_BIN"] { return path }
        var candidates: [URL] = [Bundle.main.bundleURL, Bundle(for: CLITests.self).bundleURL.deletingLastPathComponent()]
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
        }
        candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
        for dir in candidates {
            var d = dir
            // Inside an .xctest bundle on macOS: walk up to the build folder.
            for _ in 0..<4 {
                let path = d.appendingPathComponent("gemma-tiny").path
                if FileManager.default.isExecutableFile(atPath: path) { return path }
                d = d.deletingLastPathComponent()
            }
        }
        throw XCTSkip("gemma-tiny executable not found next to the tests; build it (swift build) or set GEMMA_TINY_BIN")
    }

    /// Runs `executable` (default: the built gemma-tiny). `environment` replaces this process's
    /// environment; `extraEnvironment` is set on top of it (or of `environment`). With `timeout`,
    /// a process still running after that many seconds is killed and the test fails.
    static func run(_ arguments: [String], stdin: String? = nil, executable: String? = nil,
                    environment: [String: String]? = nil, extraEnvironment: [String: String] = [:],
                    timeout: Double? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try executable ?? binary())
        process.arguments = arguments
        if environment != nil || !extraEnvironment.isEmpty {
            process.environment = (environment ?? ProcessInfo.processInfo.environment).merging(extraEnvironment) { $1 }
        }
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        let watchdog = timeout.map { Watchdog(process: process, seconds: $0) }
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        // Read both pipes fully before waiting, so a chatty process cannot block.
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
        if watchdog?.fired == true {
            XCTFail("\(arguments.joined(separator: " ")) still running after \(timeout ?? 0) s: killed", file: file, line: line)
        }
        return Output(status: process.terminationStatus, pid: process.processIdentifier, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Kills a process still running after `seconds`, and remembers that it did.
    final class Watchdog: @unchecked Sendable {
        private let lock = NSLock()
        private var killed = false
        var fired: Bool { lock.withLock { killed } }

        init(process: Process, seconds: Double) {
            let pid = process.processIdentifier
            DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { [self, process] in
                guard process.isRunning else { return }
                lock.withLock { killed = true }
                kill(pid, SIGKILL)
            }
        }
    }

    /// A failure: non-zero exit and exactly one `error: ` line on stderr mentioning `text`.
    static func assertOneLineError(_ o: Output, contains text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNotEqual(o.status, 0, file: file, line: line)
        let lines = o.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        XCTAssertEqual(lines.count, 1, "stderr: \(o.stderr)", file: file, line: line)
        XCTAssertTrue(o.stderr.hasPrefix("error: "), "stderr: \(o.stderr)", file: file, line: line)
        XCTAssertTrue(o.stderr.contains(text), "stderr: \(o.stderr) should mention \(text)", file: file, line: line)
    }
}
