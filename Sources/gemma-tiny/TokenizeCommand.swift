import ArgumentParser
import Foundation
import GemmaTiny
import GemmaTinyCLISupport

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Print the token ids of a text (from -p, -f or stdin).",
        discussion: """
        Prints the ids as one list, e.g. [2, 651, 6037]. With --pieces, prints one token per line: \
        its id and its piece. <bos> comes first unless --no-bos. Only the tokenizer section of the \
        model file is read (no unpacking of compressed weights).
        """
    )

    @Option(name: [.customShort("m"), .long], help: ArgumentHelp("Model file (.gtm).", valueName: "path"))
    var model: String

    @OptionGroup(title: "Text") var input: PromptInput

    @Flag(name: .long, help: "Show each token's piece, one token per line.")
    var pieces = false

    @Flag(name: .long, help: "Parse control tokens written in the text (<start_of_turn>, <bos>, ...) as tokens.")
    var special = false

    @Flag(name: .customLong("no-bos"), help: "Do not add <bos> first.")
    var noBos = false

    @Flag(name: .customLong("show-count"), help: "Print the number of tokens at the end.")
    var showCount = false

    func run() throws {
        let text = try input.read()
        let tokenizer: Tokenizer
        do {
            // Only the metadata and vocabulary are needed: no unpacking.
            let file = try ModelFile(path: model)
            tokenizer = try Tokenizer(vocabulary: file.vocabulary, settings: file.metadata.tokenizer)
        } catch let error as ModelFileError {
            throw CLIError.message(error.description)
        } catch let error as TokenizerError {
            throw CLIError.message(error.description)
        }
        var ids: [Int] = !noBos && tokenizer.bosId >= 0 ? [tokenizer.bosId] : []
        ids += tokenizer.encode(text, parseSpecialTokens: special)
        if pieces {
            var out = ""
            for id in ids {
                let piece = tokenizer.piece(id) ?? "?"
                out += String(format: "%6d", id) + " -> '" + escaped(piece) + "'\n"
            }
            writeOut(out)
        } else {
            writeOut("[" + ids.map(String.init).joined(separator: ", ") + "]\n")
        }
        if showCount { writeOut("Total number of tokens: \(ids.count)\n") }
    }

    /// Control characters shown as escapes, so every token stays on its line.
    private func escaped(_ s: String) -> String {
        var out = ""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case "'": out += "\\'"
            case "\\": out += "\\\\"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += String(format: "\\x%02x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}
