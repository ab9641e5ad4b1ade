import ArgumentParser
import GemmaTiny

/// Sampling flags, named as llama.cpp names them.
public struct SamplingFlags: ParsableArguments {
    public init() {}

    @Option(name: .customLong("temp"), parsing: .unconditional, help: ArgumentHelp("Temperature; 0 = greedy (always the most likely token).", valueName: "t"))
    public var temperature: Float = 0.8

    @Option(name: .customLong("top-k"), parsing: .unconditional, help: ArgumentHelp("Keep the k most likely tokens (0 = off).", valueName: "k"))
    public var topK: Int = 40

    @Option(name: .customLong("top-p"), parsing: .unconditional, help: ArgumentHelp("Nucleus sampling: keep the most likely tokens up to this total probability (1 = off).", valueName: "p"))
    public var topP: Float = 0.95

    @Option(name: .customLong("min-p"), parsing: .unconditional, help: ArgumentHelp("Drop tokens less likely than min-p times the most likely one (0 = off).", valueName: "p"))
    public var minP: Float = 0.05

    @Option(name: .customLong("repeat-penalty"), parsing: .unconditional, help: ArgumentHelp("Penalty for tokens among the last --repeat-last-n (1 = off).", valueName: "x"))
    public var repeatPenalty: Float = 1.0

    @Option(name: .customLong("repeat-last-n"), parsing: .unconditional, help: ArgumentHelp("How many recent tokens the repeat penalty looks at.", valueName: "n"))
    public var repeatLastN: Int = 64

    @Option(name: .customLong("seed"), parsing: .unconditional, help: ArgumentHelp("Random seed (default: random; printed with --verbose).", valueName: "n"))
    public var seed: UInt64?

    public var options: SamplingOptions {
        SamplingOptions(temperature: temperature, topK: topK, topP: topP, minP: minP,
                        repetitionPenalty: repeatPenalty, repetitionWindow: repeatLastN, seed: seed)
    }

    public func validate() throws {
        do {
            try options.validate()
        } catch {
            throw ValidationError(error.description)
        }
    }
}
