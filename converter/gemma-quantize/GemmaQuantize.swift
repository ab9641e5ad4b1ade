import ArgumentParser
import Foundation
import GemmaConvert
import GemmaTiny
import GemmaTinyCLISupport

struct GemmaQuantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemma-quantize",
        abstract: "Convert a Hugging Face Gemma checkpoint (Gemma 1, 2, 3 text) or a GGUF file into a gemma-tiny model file.",
        discussion: """
        Examples:
          gemma-quantize ./gemma-2b -o gemma-2b.gtm                 (q4k: the Q4_K_M mix of q4k/q6k)
          gemma-quantize ./gemma-2b -o gemma-2b-q4.gtm --type q4    (the former default: q4, k/v/down q8, q8 embedding)
          gemma-quantize ./gemma-2b -o gemma-2b-q8.gtm --type q8
          gemma-quantize gemma-3-270m-q4_k_m.gguf -o gemma-3-270m.gtm   (GGUF: its own types, Q4_K/Q6_K bytes copied)
          gemma-quantize inspect gemma-2b.gtm
          gemma-quantize verify gemma-2b.gtm
        """,
        version: gemmaTinyVersion,
        subcommands: [Convert.self, Inspect.self, Verify.self],
        defaultSubcommand: Convert.self)
}

/// The error `runCommandLine` (main.swift) prints as one `error: …` line, with exit status 1.
func fail(_ error: Error) -> CLIError { .message("\(error)") }

/// A storage type as the command line spells it ("q4k"). Not `StorageType` itself: for a
/// CaseIterable, RawRepresentable type ArgumentParser shows an option's default as the raw
/// value, here the file format's number ("default: 5").
struct StorageTypeName: ExpressibleByArgument {
    var type: StorageType

    init(_ type: StorageType) { self.type = type }
    init?(argument: String) {
        guard let type = StorageType(name: argument) else { return nil }
        self.type = type
    }

    var defaultValueDescription: String { type.description }
    static var allValueStrings: [String] { StorageType.allCases.map(\.description) }
    static var defaultCompletionKind: CompletionKind { .list(allValueStrings) }
}
