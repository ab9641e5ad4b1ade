import Foundation

/// The built `gemma-quantize` (next to the test bundle) as a child process, its stdout and
/// stderr collected in the background so that a chatty process never blocks on a full pipe.
final class QuantizeProcess: @unchecked Sendable {
    struct Output {
        var status: Int32
        /// `.uncaughtSignal` when it was killed (`status` is then the signal number).
        var reason: Process.TerminationReason
        var stdout: String
        var stderr: String
    }

    static var binary: String {
        // The test bundle sits next to the products it was built with.
        let buildDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return buildDir.appendingPathComponent("gemma-quantize").path
    }

    let process = Process()
    private let collected = DispatchGroup()
    private var out = Data()
    private var err = Data()

    /// Starts `gemma-quantize arguments`. With `shellPrelude`, `/bin/sh` runs the prelude (e.g.
    /// `ulimit -f 64`) and then execs gemma-quantize, so the process id is gemma-quantize's.
    init(_ arguments: [String], shellPrelude: String? = nil) throws {
        let binary = Self.binary
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw QuantizeProcessError(description: "gemma-quantize not built at \(binary)")
        }
        if let shellPrelude {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", shellPrelude + "; exec \"$0\" \"$@\"", binary] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
        }
        let outPipe = Pipe(), errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        try process.run()
        collected.enter()
        DispatchQueue.global().async {
            self.out = outPipe.fileHandleForReading.readDataToEndOfFile()
            self.collected.leave()
        }
        collected.enter()
        DispatchQueue.global().async {
            self.err = errPipe.fileHandleForReading.readDataToEndOfFile()
            self.collected.leave()
        }
    }

    var pid: Int32 { process.processIdentifier }

    /// Waits for the process to end.
    func wait() -> Output {
        collected.wait()
        process.waitUntilExit()
        return Output(status: process.terminationStatus, reason: process.terminationReason,
                      stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }

    /// Runs `gemma-quantize arguments` to the end.
    static func run(_ arguments: [String], shellPrelude: String? = nil) throws -> Output {
        try QuantizeProcess(arguments, shellPrelude: shellPrelude).wait()
    }
}

struct QuantizeProcessError: Error, CustomStringConvertible {
    var description: String
}
