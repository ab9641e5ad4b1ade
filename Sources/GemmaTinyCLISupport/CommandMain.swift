import ArgumentParser
import Foundation

/// Parses the command line and runs `Command` by hand, so that every failure is one
/// `error: ...` line on stderr and a non-zero exit code (ArgumentParser would add the usage
/// text); --help and --version print as usual.
public func runCommandLine<Command: ParsableCommand>(_: Command.Type) -> Never {
    do {
        var command = try Command.parseAsRoot()
        try command.run()
        if let why = StandardOutputFailure.check() {
            printError("cannot write standard output: \(why)")
            exit(1)
        }
        exit(0)
    } catch {
        let code = Command.exitCode(for: error)
        if code == .success {
            Command.exit(withError: error)
        }
        if let cli = error as? CLIError, case .silent(let status) = cli {
            exit(status)
        }
        var message = Command.message(for: error)
        if code == .validationFailure {
            // ArgumentParser's usage errors: the first line, where a list of valid values
            // ("Please provide one of the following:", then "- q4k" lines) folds in.
            let lines = message.split(separator: "\n", omittingEmptySubsequences: true).map { $0.trimmingCharacters(in: .whitespaces) }
            message = lines.first ?? "\(error)"
            let items = lines.dropFirst().prefix { $0.hasPrefix("- ") }.map { $0.dropFirst(2) }
            if message.hasSuffix(":") && !items.isEmpty { message += " " + items.joined(separator: ", ") }
        }
        // Any other error is printed whole; printError keeps it on one line.
        if message.isEmpty { message = "\(error)" }
        printError(message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message)
        exit(code.rawValue == 0 ? 1 : code.rawValue)
    }
}
