import ArgumentParser
import Dispatch
import Foundation
import GemmaTiny
import GemmaTinyCLISupport
import Synchronization

struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Chat with an instruction-tuned model, turn by turn.",
        discussion: """
        Each line you type is one user turn, sent with Gemma's chat template \
        (<start_of_turn>user ... <end_of_turn>, then <start_of_turn>model). The conversation \
        stays in the KV cache, so each turn only processes its new tokens. End a line with '\\' \
        to continue the message on the next line.

        Commands: /reset starts a new conversation, /quit (or end of input, Ctrl-D) exits; \
        another lone /word is an unknown command, not a message. \
        Ctrl-C stops the reply being generated (the conversation continues); at the prompt it exits.

        With input from a pipe or file, a message that fails (too long for the context left, an \
        unknown command) is reported and the next one is read; the exit status is then 1.
        """
    )

    @OptionGroup(title: "Model") var model: ModelOptions
    @OptionGroup(title: "Sampling") var sampling: SamplingFlags

    @Option(name: [.customShort("n"), .customLong("max-tokens")], parsing: .unconditional,
            help: ArgumentHelp("Most tokens per reply; -1 = until <end_of_turn> or the end of the context.", valueName: "n"))
    var maxTokens: Int = -1

    @Option(name: .customLong("stop"), help: ArgumentHelp("Also end a reply at this string (repeatable).", valueName: "text"))
    var stop: [String] = []

    func validate() throws {
        if maxTokens < -1 { throw ValidationError("--max-tokens must be >= 0, or -1 for no limit; got \(maxTokens)") }
        if stop.contains("") { throw ValidationError("--stop takes a non-empty string (it would match everywhere)") }
    }

    func run() throws {
        let (gemma, loadSeconds) = try model.load()
        let generator = try model.makeGenerator(gemma)
        let chat: ChatSession
        do {
            chat = try ChatSession(generator: generator)
        } catch {
            throw CLIError.message(error.description)
        }
        if model.verbose {
            printNote(String(format: "load time: %.0f ms; context %d tokens; kernels: %@", loadSeconds * 1000,
                             generator.contextLength, generator.session.kernels.name))
        }
        let options = GenerationOptions(maxTokens: maxTokens < 0 ? nil : maxTokens, sampling: sampling.options,
                                        stopSequences: stop)
        let interrupt = InterruptFlag()
        interrupt.install()
        let interactive = isatty(STDIN_FILENO) != 0
        if interactive {
            printNote("chat with \(model.model): /reset to start over, /quit to exit, Ctrl-C stops a reply")
        }

        // Piped input is a script: a message that fails is reported and the rest still runs,
        // but the exit status says that not every message was answered.
        var failures = 0
        while true {
            if interactive { writeOut("> ") }
            guard let message = readMessage(interactive: interactive) else { break }
            let trimmed = message.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            if trimmed == "/quit" || trimmed == "/exit" { break }
            if trimmed == "/reset" {
                chat.reset()
                if interactive { printNote("(new conversation)") }
                continue
            }
            // A lone word after a slash is meant as a command: a typo is not sent to the model.
            if trimmed.hasPrefix("/"), trimmed.dropFirst().allSatisfy({ $0.isLetter }), trimmed.count > 1 {
                printError("unknown command \(trimmed) (commands: /reset, /quit)")
                failures += 1
                continue
            }
            interrupt.beginReply()
            defer { interrupt.endReply() }
            do {
                let result = try chat.send(message, options: options, shouldStop: { interrupt.isSet }) { writeOut($0) }
                writeOut("\n")
                switch result.stopReason {
                case .cancelled: printNote("(stopped)")
                case .contextFull: printNote("(the context is full: /reset to start a new conversation)")
                default: break
                }
                if model.verbose {
                    let s = result.stats
                    printNote(String(format: "[prompt %d tokens, %.2f tokens/s; reply %d tokens, %.2f tokens/s; context %d/%d]",
                                     s.promptTokens, s.promptTokensPerSecond, s.generatedTokens, s.generationTokensPerSecond,
                                     generator.contextLength - generator.remainingContext, generator.contextLength))
                }
            } catch .promptTooLong(let tokens, let available, let ctx) {
                printError("the message is \(tokens) tokens but only \(available ?? ctx) of the \(ctx)-token context are left; /reset to start a new conversation")
                failures += 1
            } catch {
                printError(error.description)
                failures += 1
            }
        }
        if model.verbose, let peak = peakResidentBytes() { printNote("peak memory: \(formatBytes(peak)) (VmHWM)") }
        if failures > 0 && !interactive { throw CLIError.silent(1) }
    }

    /// One message: a line, joined with the next while it ends with a backslash. nil at EOF.
    private func readMessage(interactive: Bool) -> String? {
        var lines: [String] = []
        while let line = readLine(strippingNewline: true) {
            if line.hasSuffix("\\") {
                lines.append(String(line.dropLast()))
                if interactive { writeOut(". ") }
                continue
            }
            lines.append(line)
            return lines.joined(separator: "\n")
        }
        return lines.isEmpty ? nil : lines.joined(separator: "\n")
    }
}

/// SIGINT while a reply is generated sets a flag the generation loop polls per token; SIGINT
/// at the prompt exits.
final class InterruptFlag: @unchecked Sendable {
    private let flag = Atomic<Bool>(false)
    private let replying = Atomic<Bool>(false)
    /// Set once, before any signal can arrive; kept alive for the life of the process.
    private var source: (any DispatchSourceSignal)?

    var isSet: Bool { flag.load(ordering: .relaxed) }

    func install() {
        signal(SIGINT, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        s.setEventHandler { [self] in
            if replying.load(ordering: .relaxed) {
                flag.store(true, ordering: .relaxed)
            } else {
                writeOut("\n")
                exit(130)
            }
        }
        s.resume()
        source = s
    }

    func beginReply() {
        flag.store(false, ordering: .relaxed)
        replying.store(true, ordering: .relaxed)
    }

    func endReply() {
        replying.store(false, ordering: .relaxed)
        flag.store(false, ordering: .relaxed)
    }
}
