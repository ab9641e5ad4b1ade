import ArgumentParser
import Foundation
import GemmaTiny
import GemmaTinyCLISupport

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Continue a prompt, streaming the generated text to stdout.",
        discussion: """
        The prompt comes from -p, -f or stdin and starts with <bos> (unless --no-bos). Generation \
        stops after --max-tokens tokens, at <eos> or <end_of_turn>, at a --stop string, or when the \
        context is full. Only the generated text is printed. With --json one JSON object is \
        printed at the end instead: prompt_ids, generated_ids, text, stop_reason, seed and timing \
        (load_ms, prompt_tokens_per_s, gen_tokens_per_s).
        """
    )

    @OptionGroup(title: "Model") var model: ModelOptions
    @OptionGroup(title: "Prompt") var input: PromptInput
    @OptionGroup(title: "Sampling") var sampling: SamplingFlags

    @Option(name: [.customShort("n"), .customLong("max-tokens")], parsing: .unconditional,
            help: ArgumentHelp("Most tokens to generate; -1 = until <eos> or the end of the context.", valueName: "n"))
    var maxTokens: Int = 256

    @Option(name: .customLong("stop"), help: ArgumentHelp("Stop when the text contains this string (repeatable); the string is not printed.", valueName: "text"))
    var stop: [String] = []

    @Flag(name: .customLong("no-bos"), help: "Do not start the prompt with <bos>.")
    var noBos = false

    @Flag(name: .customLong("special"), help: "Parse control tokens written in the prompt (<start_of_turn>, <bos>, ...) as tokens.")
    var special = false

    @Flag(name: .customLong("ignore-eos"), help: "Keep generating after <eos> / <end_of_turn>.")
    var ignoreEos = false

    @Flag(name: .customLong("json"), help: "Print one JSON object with ids, text and timing instead of streaming text.")
    var json = false

    @Option(name: .customLong("json-schema"), help: ArgumentHelp(
        "Constrain the reply to one JSON value valid against this JSON Schema: a file, or the schema itself if it starts with '{'.",
        valueName: "file"))
    var jsonSchema: String?

    @Flag(name: .customLong("json-object"), help: "Constrain the reply to one JSON object (any keys).")
    var jsonObject = false

    func validate() throws {
        if maxTokens < -1 { throw ValidationError("--max-tokens must be >= 0, or -1 for no limit; got \(maxTokens)") }
        if stop.contains("") { throw ValidationError("--stop takes a non-empty string (it would match everywhere)") }
        if jsonSchema != nil && jsonObject { throw ValidationError("--json-schema and --json-object cannot be used together") }
    }

    /// --json-schema / --json-object, the schema checked before the model is loaded.
    func responseFormat() throws -> ResponseFormat {
        if jsonObject { return .jsonObject }
        guard let jsonSchema else { return .text }
        var text = jsonSchema
        if !jsonSchema.hasPrefix("{") {
            let data = try readInput(jsonSchema, label: "the JSON schema file \(jsonSchema)")
            guard let decoded = String(data: data, encoding: .utf8) else {
                throw CLIError.message("the JSON schema file \(jsonSchema) is not UTF-8 text")
            }
            text = decoded
        }
        do {
            try JSONSchemaCompiler.validate(schema: text)
        } catch {
            throw CLIError.message("--json-schema: \(error.message)")
        }
        return .jsonSchema(text)
    }

    func run() throws {
        let format = try responseFormat()
        let text = try input.read()
        let (gemma, loadSeconds) = try model.load()
        let generator = try model.makeGenerator(gemma)
        let prompt = generator.encodePrompt(text, addBos: !noBos, parseSpecialTokens: special)
        if prompt.isEmpty { throw CLIError.message("the prompt is empty (and --no-bos leaves no token to start from)") }

        let options = GenerationOptions(maxTokens: maxTokens < 0 ? nil : maxTokens, sampling: sampling.options,
                                        stopSequences: stop, stopAtEndOfSequence: !ignoreEos, responseFormat: format)
        let result: GenerationResult
        do {
            result = try generator.generate(prompt: prompt, options: options, onText: { piece in
                if !json { writeOut(piece) }
            })
        } catch .promptTooLong(let tokens, _, let ctx) {
            let maximum = gemma.config.maxPositionEmbeddings
            let hint = ctx < maximum ? "; use a shorter prompt or a larger --ctx (up to \(maximum))" : "; the model's maximum is \(maximum)"
            throw CLIError.message("the prompt is \(tokens) tokens, longer than the context (\(ctx) tokens)\(hint)")
        } catch .invalidOptions(let why) {
            // The options were checked when parsed: this is a response format the model cannot meet.
            throw CLIError.message(why)
        } catch {
            throw CLIError.message(error.description)
        }

        if json {
            let report = RunReport(
                promptIds: prompt, generatedIds: result.generatedTokens, text: result.text,
                stopReason: result.stopReason.rawValue, seed: result.seed,
                timing: .init(loadMs: loadSeconds * 1000,
                              promptMs: result.stats.promptSeconds * 1000,
                              genMs: result.stats.generationSeconds * 1000,
                              promptTokensPerS: result.stats.promptTokensPerSecond,
                              genTokensPerS: result.stats.generationTokensPerSecond))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let data = try encoder.encode(report)
            writeOut(String(decoding: data, as: UTF8.self) + "\n")
        } else {
            writeOut(result.text.hasSuffix("\n") ? "" : "\n")
        }
        if model.verbose {
            if result.stopReason != .maxTokens { printNote("stopped: \(result.stopReason.rawValue)") }
            TimingReport(loadSeconds: loadSeconds, stats: result.stats)
                .print(kernels: generator.session.kernels.name,
                       seed: sampling.temperature > 0 ? result.seed : nil, contextLength: generator.contextLength)
        }
    }
}

struct RunReport: Encodable {
    struct Timing: Encodable {
        var loadMs: Double
        var promptMs: Double
        var genMs: Double
        var promptTokensPerS: Double
        var genTokensPerS: Double
        enum CodingKeys: String, CodingKey {
            case loadMs = "load_ms", promptMs = "prompt_ms", genMs = "gen_ms"
            case promptTokensPerS = "prompt_tokens_per_s", genTokensPerS = "gen_tokens_per_s"
        }
    }

    var promptIds: [Int]
    var generatedIds: [Int]
    var text: String
    var stopReason: String
    var seed: UInt64
    var timing: Timing

    enum CodingKeys: String, CodingKey {
        case promptIds = "prompt_ids", generatedIds = "generated_ids", text
        case stopReason = "stop_reason", seed, timing
    }
}
