import ArgumentParser
import Foundation
import GemmaTiny
import GemmaTinyCLISupport

/// Peak resident memory (VmHWM from /proc/self/status), in bytes; nil where unavailable.
func peakResidentBytes() -> Int? { procStatusBytes("VmHWM") }

/// A "kB" line of /proc/self/status (VmHWM, VmRSS, RssAnon, RssFile), in bytes.
func procStatusBytes(_ key: String) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix(key + ":") {
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
    }
    return nil
}

/// Where a prompt comes from: -p, -f, or stdin.
struct PromptInput: ParsableArguments {
    @Option(name: [.short, .long], help: ArgumentHelp("Prompt text.", valueName: "text"))
    var prompt: String?

    @Option(name: [.customShort("f"), .customLong("file")], help: ArgumentHelp("Read the prompt from a file ('-' = stdin).", valueName: "path"))
    var file: String?

    func validate() throws {
        if prompt != nil && file != nil { throw ValidationError("give the prompt with -p or -f, not both") }
    }

    /// The text, from -p, -f or (neither given) stdin.
    func read() throws -> String {
        if let prompt { return prompt }
        if (file == nil || file == "-") && isatty(STDIN_FILENO) != 0 {
            printNote("reading the prompt from stdin (end it with Ctrl-D; or use -p / -f)")
        }
        return String(decoding: try readInput(file), as: UTF8.self)
    }
}

struct TimingReport {
    var loadSeconds: Double
    var stats: GenerationStats

    func print(kernels: String, seed: UInt64?, contextLength: Int) {
        let s = stats
        printNote(String(format: "load time: %.0f ms", loadSeconds * 1000))
        printNote(String(format: "prompt: %d tokens in %.0f ms (%.2f tokens/s)", s.promptTokens, s.promptSeconds * 1000, s.promptTokensPerSecond))
        printNote(String(format: "generation: %d tokens in %.0f ms (%.2f tokens/s)", s.generatedTokens, s.generationSeconds * 1000, s.generationTokensPerSecond))
        var extra = "kernels: \(kernels), context: \(contextLength)"
        if let seed { extra += ", seed: \(seed)" }
        printNote(extra)
        if let peak = peakResidentBytes() { printNote("peak memory: \(formatBytes(peak)) (VmHWM)") }
    }
}

