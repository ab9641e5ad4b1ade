import ArgumentParser
import Foundation

/// Parses the command line and runs `Command` by hand, so that every failure is one
/// `error: ...` line on stderr and a non-zero exit code (ArgumentParser would add the usage
/// text); --help and --version print as usual.
public func runCommandLine<Command: ParsableCommand>(_: Command.Type) -> Never {
    do {
        var command = try Command.parseAsRoot()
        try command.run()
        exit(0)
    } catch {
        let code = Command.exitCode(for: error)
        if code == .success {
            Command.exit(withError: error)
        }
        if let cli = error as? CLIError, case .silent(let status) = cli {
            exit(status)
        }
        let message = Command.message(for: error)
            .split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? "\(error)"
        printError(message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message)
        exit(code.rawValue == 0 ? 1 : code.rawValue)
    }
}
