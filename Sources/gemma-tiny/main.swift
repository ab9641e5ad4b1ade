import ArgumentParser
import Foundation

// Parse and run by hand, so that every failure is one `error: ...` line on stderr and a non-zero
// exit code (ArgumentParser would add the usage text); --help and --version print as usual.
do {
    var command = try GemmaTinyCommand.parseAsRoot()
    try command.run()
} catch {
    let code = GemmaTinyCommand.exitCode(for: error)
    if code == .success {
        GemmaTinyCommand.exit(withError: error)
    }
    if let cli = error as? CLIError, case .silent(let status) = cli {
        exit(status)
    }
    let message = GemmaTinyCommand.message(for: error)
        .split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? "\(error)"
    printError(message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message)
    exit(code.rawValue == 0 ? 1 : code.rawValue)
}
