import ArgumentParser
import Foundation
import GemmaTiny

extension ModelLoader.UnpackMode: ExpressibleByArgument {}
extension KVCacheType: ExpressibleByArgument {}

/// -m, --ctx, --threads, --batch-size, --cache-type, --unpack, --precise-inputs, --no-preload, --verbose: shared by every command that runs the model.
public struct ModelOptions: ParsableArguments {
    public init() {}

    @Option(name: [.customShort("m"), .long], help: ArgumentHelp("Model file (.gtm), as written by gemma-quantize.", valueName: "path"))
    public var model: String

    @Option(name: [.customShort("c"), .customLong("ctx")], parsing: .unconditional,
            help: ArgumentHelp("Context length in tokens (KV cache size). Default: the model's maximum (max_position_embeddings), unless the command says otherwise; 0 = the model's maximum. Larger values are capped at the maximum.", valueName: "n"))
    public var contextLength: Int?

    @Option(name: [.customShort("t"), .long], parsing: .unconditional, help: ArgumentHelp("Threads for the matrix products (default: one per core).", valueName: "n"))
    public var threads: Int?

    @Option(name: [.customShort("b"), .customLong("batch-size")], parsing: .unconditional,
            help: ArgumentHelp("Prompt tokens per pass through the model (batched prompt processing).", valueName: "n"))
    public var batchSize: Int = InferenceSession.defaultBatchSize

    @Option(name: [.customLong("cache-type")],
            help: ArgumentHelp("KV cache type for keys and values (as llama.cpp's -ctk/-ctv, one for both): 'f16' (default, as llama.cpp: half the memory; values rounded to IEEE half) or 'f32' (exact).", valueName: "type"))
    public var cacheType: KVCacheType = .default

    @Option(name: .long, help: ArgumentHelp("Where a mostly compressed model (gemma-quantize --compress always) is unpacked: 'sibling' writes <file>.unpacked once (default; falls back to memory if the folder is read-only), 'memory' decompresses its compressed tensors into RAM on every start. A default file's few compressed tensors (the norms) always go to memory.", valueName: "mode"))
    public var unpack: ModelLoader.UnpackMode = .sibling

    @Flag(name: .long, help: "Quantized products also run on their inputs' int8 rounding error: inputs of about 15 bits instead of 8, as if the weights met f32 inputs, for twice the multiply-adds (prompts at about half speed, generation at about 0.6x). For quality measurements.")
    public var preciseInputs = false

    @Flag(name: .customLong("no-preload"),
          help: "Do not read the model file into memory at load time. By default, when much of it is not in memory yet (a cold start from an SD card) and it fits, it is read in before the first token, with a progress line on a terminal; otherwise the first prompt waits for the same reads, silently.")
    public var noPreload = false

    @Flag(name: [.short, .long], help: "Print load time, speeds and peak memory on stderr.")
    public var verbose = false

    public func validate() throws {
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1, got \(t)") }
        if let t = threads, t > WorkerPool.maximumThreadCount {
            throw ValidationError("--threads must be at most \(WorkerPool.maximumThreadCount), got \(t) (this machine has \(WorkerPool.defaultThreadCount) cores)")
        }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
        if let c = contextLength, c < 0 { throw ValidationError("--ctx must be >= 0 (0 = the model's maximum), got \(c)") }
    }

    /// What the memory check before loading counts: --ctx (none or 0: the model's maximum), --batch-size, --threads.
    public var plannedSession: MemoryEstimate.Session {
        MemoryEstimate.Session(contextLength: contextLength == 0 ? nil : contextLength, batchSize: batchSize, threads: threads ?? 0,
                               cacheType: cacheType)
    }

    /// Opens the model, printing unpacking progress on stderr. Returns the model and load time.
    /// First, a `warning:` paragraph on stderr when the model will not fit in the memory
    /// available with `session` (default: `plannedSession`).
    public func load(session: MemoryEstimate.Session? = nil) throws -> (GemmaModel, Double) {
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
        if !noPreload {
            let fits = (try? MemoryFit(file: model.file, session: memoryCheck.session, unpack: unpack, root: memoryRoot))?.fits ?? true
            preload(model.file, fits: fits, terminal: terminal)
        }
        return (model, now() - start)
    }

    /// Less than this much of the file missing from memory is not worth a preload (GEMMA_TINY_PRELOAD_MIN_BYTES: tests).
    static var preloadMinimumBytes: Int {
        ProcessInfo.processInfo.environment["GEMMA_TINY_PRELOAD_MIN_BYTES"].flatMap { Int($0) } ?? 64 << 20
    }

    /// Reads the model file in before the first token when much of it is not in memory and it
    /// fits (a file that does not fit would push its own first pages out while being read).
    /// On a terminal a progress line appears once it takes longer than half a second; with
    /// --verbose a line says how much was read and how fast.
    func preload(_ file: ModelFile, fits: Bool, terminal: Bool) {
        guard fits, file.isReadFromMapping, let resident = file.residentBytes else { return }
        let missing = file.fileSize - resident
        guard missing >= Self.preloadMinimumBytes else { return }
        let start = now()
        var printed = false
        var lastPercent = -1
        file.readIn { done in
            guard terminal, now() - start > 0.5 else { return }
            let percent = done * 100 / file.fileSize
            guard percent != lastPercent else { return }
            lastPercent = percent
            printed = true
            writeErr("\rreading the model: \(percent)% (\(formatBytes(done)) of \(formatBytes(file.fileSize)))")
        }
        if printed { writeErr("\n") }
        if verbose {
            let seconds = now() - start
            printNote("preload: read \(formatBytes(missing)) of the model from storage in \(String(format: "%.2f", seconds)) s"
                      + (seconds > 0 ? " (\(formatBytes(Int(Double(missing) / seconds)))/s)" : ""))
        }
    }

    /// The context length to use for `model`.
    public func context(for model: GemmaModel) -> Int {
        let maximum = model.config.maxPositionEmbeddings
        guard let asked = contextLength, asked != 0 else { return maximum }
        if asked > maximum, verbose {
            printNote("note: --ctx \(asked) is more than the model's \(maximum) positions; using \(maximum)")
        }
        return min(asked, maximum)
    }

    public func makeKernels() -> any MatmulKernels { makeDefaultKernels(threads: threads ?? 0, preciseInputs: preciseInputs) }

    public func makeGenerator(_ model: GemmaModel) throws -> Generator {
        do {
            return try Generator(model: model, contextLength: context(for: model), kernels: makeKernels(),
                                 batchSize: batchSize, cacheType: cacheType)
        } catch {
            throw CLIError.message(error.description)
        }
    }
}
