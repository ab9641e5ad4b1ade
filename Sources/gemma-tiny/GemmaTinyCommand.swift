import ArgumentParser
import GemmaTiny

struct GemmaTinyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemma-tiny",
        abstract: "Run Google's Gemma models on the CPU from a gemma-tiny model file.",
        discussion: """
        Model files are made by gemma-quantize from a Hugging Face checkpoint or a GGUF file, and \
        mapped as they are. In a file made with --compress always, the compressed weights are \
        unpacked on first use to <file>.unpacked beside it (or into memory with --unpack memory); \
        later starts map the unpacked file directly.

        Examples:
          gemma-tiny run -m gemma-2b.gtm -p "The capital of France is" -n 32
          gemma-tiny run -m gemma-2b.gtm -f prompt.txt --temp 0 --json
          gemma-tiny chat -m gemma-2b-it.gtm
          gemma-tiny tokenize -m gemma-2b.gtm -p "Hello world" --pieces
          gemma-tiny perplexity -m gemma-2b.gtm -f wiki.test.raw --ctx 512
          gemma-tiny bench -m gemma-2b.gtm -p 128,512 -n 128 -t 1,2
        """,
        version: gemmaTinyVersion,
        subcommands: [RunCommand.self, ChatCommand.self, TokenizeCommand.self, PerplexityCommand.self, BenchCommand.self, ServeCommand.self],
        defaultSubcommand: nil
    )
}
