import ArgumentParser
import Foundation
import GemmaTiny

/// Errors the commands report as `error: <message>`.
enum CLIError: Error, CustomStringConvertible {
    case message(String)
    /// Exit with this status without printing anything more.
    case silent(Int32)

    var description: String {
        switch self {
        case .message(let m): return m
        case .silent(let s): return "exit \(s)"
        }
    }
}

func printError(_ message: String) {
    writeErr("error: \(message)\n")
}

func printNote(_ message: String) {
    writeErr("\(message)\n")
}

/// Writes straight to stdout (no buffering), so text appears as it is generated.
func writeOut(_ text: String) { writeAll(STDOUT_FILENO, text) }

func writeErr(_ text: String) { writeAll(STDERR_FILENO, text) }

private func writeAll(_ fd: Int32, _ text: String) {
    var text = text
    text.withUTF8 { buffer in
        var done = 0
        while done < buffer.count {
            let n = write(fd, buffer.baseAddress! + done, buffer.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                return  // closed pipe etc.: nothing useful to do
            }
            done += n
        }
    }
}

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

func formatBytes(_ n: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n)
    var u = 0
    while v >= 1024 && u < units.count - 1 {
        v /= 1024
        u += 1
    }
    return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

extension ModelLoader.UnpackMode: ExpressibleByArgument {}

/// -m, --ctx, --threads, --batch-size, --unpack, --verbose: shared by every command that runs the model.
struct ModelOptions: ParsableArguments {
    @Option(name: [.customShort("m"), .long], help: ArgumentHelp("Model file (.gtm), as written by gemma-quantize.", valueName: "path"))
    var model: String

    @Option(name: [.customShort("c"), .customLong("ctx")], parsing: .unconditional,
            help: ArgumentHelp("Context length in tokens (KV cache size); 0 = the model's maximum (max_position_embeddings). Larger values are capped at the maximum.", valueName: "n"))
    var contextLength: Int = 0

    @Option(name: [.customShort("t"), .long], parsing: .unconditional, help: ArgumentHelp("Threads for the matrix products (default: one per core).", valueName: "n"))
    var threads: Int?

    @Option(name: [.customShort("b"), .customLong("batch-size")], parsing: .unconditional,
            help: ArgumentHelp("Prompt tokens per pass through the model (batched prompt processing).", valueName: "n"))
    var batchSize: Int = InferenceSession.defaultBatchSize

    @Option(name: .long, help: ArgumentHelp("Where a zstd-compressed model is unpacked: 'sibling' writes <file>.unpacked once (default; falls back to memory if the folder is read-only), 'memory' decompresses into RAM on every start.", valueName: "mode"))
    var unpack: ModelLoader.UnpackMode = .sibling

    @Flag(name: [.short, .long], help: "Print load time, speeds and peak memory on stderr.")
    var verbose = false

    func validate() throws {
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1, got \(t)") }
        if let t = threads, t > WorkerPool.maximumThreadCount {
            throw ValidationError("--threads must be at most \(WorkerPool.maximumThreadCount), got \(t) (this machine has \(WorkerPool.defaultThreadCount) cores)")
        }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
        if contextLength < 0 { throw ValidationError("--ctx must be >= 0 (0 = the model's maximum), got \(contextLength)") }
    }

    /// What the memory check before loading counts: --ctx (0 = the model's maximum), --batch-size, --threads.
    var plannedSession: MemoryEstimate.Session {
        MemoryEstimate.Session(contextLength: contextLength == 0 ? nil : contextLength, batchSize: batchSize, threads: threads ?? 0)
    }

    /// Opens the model, printing unpacking progress on stderr. Returns the model and load time.
    /// First, a `warning:` paragraph on stderr when the model will not fit in the memory
    /// available with `session` (default: `plannedSession`).
    func load(session: MemoryEstimate.Session? = nil) throws -> (GemmaModel, Double) {
        let start = now()
        // GEMMA_TINY_MEMORY_ROOT (tests only): read /proc and /sys below this folder instead.
        let memoryRoot = ProcessInfo.processInfo.environment["GEMMA_TINY_MEMORY_ROOT"] ?? "/"
        let memoryCheck = MemoryFit.Check(session: session ?? plannedSession, root: memoryRoot)
        var lastPercent = -1
        var printedProgress = false
        // On a terminal one line is rewritten every percent; in a log, a line every 10%.
        let terminal = isatty(STDERR_FILENO) != 0
        let step = terminal ? 1 : 10
        let model: GemmaModel
        do {
            model = try GemmaModel.load(path: self.model, unpack: unpack, memoryCheck: memoryCheck, notice: { printNote($0) }, progress: { p in
                guard p.bytesTotal > 0 else { return }
                let percent = Int(Double(p.bytesDone) * 100 / Double(p.bytesTotal)) / step * step
                guard percent != lastPercent else { return }
                lastPercent = percent
                let line = "unpacking: \(percent)% (\(formatBytes(p.bytesDone)) of \(formatBytes(p.bytesTotal)))"
                if terminal {
                    printedProgress = true
                    writeErr("\r" + line)
                } else {
                    writeErr(line + "\n")
                }
            })
        } catch {
            if printedProgress { writeErr("\n") }
            throw CLIError.message(error.description)
        }
        if printedProgress { writeErr("\n") }
        return (model, now() - start)
    }

    /// The context length to use for `model`.
    func context(for model: GemmaModel) -> Int {
        let maximum = model.config.maxPositionEmbeddings
        if contextLength > maximum, verbose {
            printNote("note: --ctx \(contextLength) is more than the model's \(maximum) positions; using \(maximum)")
        }
        return contextLength == 0 ? maximum : min(contextLength, maximum)
    }

    func makeKernels() -> any MatmulKernels { makeDefaultKernels(threads: threads ?? 0) }

    func makeGenerator(_ model: GemmaModel) throws -> Generator {
        do {
            return try Generator(model: model, contextLength: context(for: model), kernels: makeKernels(),
                                 batchSize: batchSize)
        } catch {
            throw CLIError.message(error.description)
        }
    }
}

/// Sampling flags, named as llama.cpp names them.
struct SamplingFlags: ParsableArguments {
    @Option(name: .customLong("temp"), parsing: .unconditional, help: ArgumentHelp("Temperature; 0 = greedy (always the most likely token).", valueName: "t"))
    var temperature: Float = 0.8

    @Option(name: .customLong("top-k"), parsing: .unconditional, help: ArgumentHelp("Keep the k most likely tokens (0 = off).", valueName: "k"))
    var topK: Int = 40

    @Option(name: .customLong("top-p"), parsing: .unconditional, help: ArgumentHelp("Nucleus sampling: keep the most likely tokens up to this total probability (1 = off).", valueName: "p"))
    var topP: Float = 0.95

    @Option(name: .customLong("min-p"), parsing: .unconditional, help: ArgumentHelp("Drop tokens less likely than min-p times the most likely one (0 = off).", valueName: "p"))
    var minP: Float = 0.05

    @Option(name: .customLong("repeat-penalty"), parsing: .unconditional, help: ArgumentHelp("Penalty for tokens among the last --repeat-last-n (1 = off).", valueName: "x"))
    var repeatPenalty: Float = 1.0

    @Option(name: .customLong("repeat-last-n"), parsing: .unconditional, help: ArgumentHelp("How many recent tokens the repeat penalty looks at.", valueName: "n"))
    var repeatLastN: Int = 64

    @Option(name: .customLong("seed"), parsing: .unconditional, help: ArgumentHelp("Random seed (default: random; printed with --verbose).", valueName: "n"))
    var seed: UInt64?

    var options: SamplingOptions {
        SamplingOptions(temperature: temperature, topK: topK, topP: topP, minP: minP,
                        repetitionPenalty: repeatPenalty, repetitionWindow: repeatLastN, seed: seed)
    }

    func validate() throws {
        do {
            try options.validate()
        } catch {
            throw ValidationError(error.description)
        }
    }
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
        if let file, file != "-" {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw CLIError.message("cannot read \(file): \(FileManager.default.fileExists(atPath: file) ? "permission denied or not a file" : "no such file")")
            }
            return String(decoding: data, as: UTF8.self)
        }
        if isatty(STDIN_FILENO) != 0 { printNote("reading the prompt from stdin (end it with Ctrl-D; or use -p / -f)") }
        let data = FileHandle.standardInput.readDataToEndOfFile()
        return String(decoding: data, as: UTF8.self)
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
