import ArgumentParser
import Foundation
import GemmaTinyCLISupport

/// `gemma-tiny serve ARGS...`: replaces this process with `gemma-tiny-serve ARGS...`, the HTTP
/// server of the separate server package (server/), so the core package needs no SwiftNIO.
/// execv keeps the process id: signals (SIGTERM from systemd, Ctrl-C) reach the server itself,
/// and the exit status is the server's.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the model over HTTP with an OpenAI-compatible API (runs gemma-tiny-serve).",
        discussion: """
        Runs \(ServerExecutable.name) with the same arguments; it is looked for beside this \
        executable, then on PATH. `gemma-tiny serve --help` shows its options. It is built \
        from the server package: \(ServerExecutable.buildHint).
        """,
        // Every argument, --help included, belongs to gemma-tiny-serve.
        helpNames: []
    )

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("Arguments for \(ServerExecutable.name).", valueName: "arguments"))
    var arguments: [String] = []

    func run() throws {
        guard let path = ServerExecutable.find() else {
            throw CLIError.message("serve needs \(ServerExecutable.name), which is not installed beside gemma-tiny (in \(ServerExecutable.ownDirectory() ?? "its folder")) or on PATH; \(ServerExecutable.buildHint)")
        }
        let argv = [path] + arguments
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cArgs.append(nil)
        execv(path, cArgs)
        // Only reached when execv failed.
        let reason = String(cString: strerror(errno))
        throw CLIError.message("cannot run \(path): \(reason)")
    }
}
