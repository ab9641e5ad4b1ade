import ArgumentParser
import Foundation
import GemmaConvert
import GemmaTiny

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a checkpoint folder (config.json, *.safetensors, tokenizer.model) or a GGUF file to a model file.")

    @Argument(help: "Checkpoint folder as downloaded from Hugging Face, or a GGUF file (llama.cpp format, versions 2 and 3).")
    var checkpoint: String

    @Option(name: .shortAndLong, help: "Output model file.")
    var output: String

    @Option(help: ArgumentHelp("Storage type of the weight matrices: q4k (default: llama.cpp's Q4_K_M mix of q4k and q6k, 4.5-6.6 bits/weight), q6k (6.56), q4 (4.5; k/v/down at q8), q5 (5.5), q8 (8.5), bf16, f32.",
                               discussion: "q4k: every matrix q4k except the embedding and, in the first and last eighth of the layers and every third one between, v_proj and down_proj, which are q6k. A row length that is not a multiple of 256 falls back to q5 (for q4k) or q8 (for q6k)."))
    var type = StorageTypeName(.q4k)

    @Option(help: "Storage type of the tied embedding / LM head (default: q6k for a q4k file, q8 for a q4 file, else as --type).")
    var embeddingType: StorageTypeName?

    @Flag(help: "Store every weight matrix but the embedding as --type: no per-tensor policy (without it a q4k file is the Q4_K_M mix, a q4 file keeps k_proj, v_proj and down_proj at q8, and both follow an already-quantized GGUF's own types: Q8_0 -> q8, Q4_0 -> q4, Q4_K -> q4k and Q6_K -> q6k for q4k (bytes copied), other quantized types -> q5).")
    var pure = false

    // .unconditional: "-5" is a value to reject with the range, not a missing one.
    @Option(parsing: .unconditional, help: "zstd compression level (1-22).")
    var zstdLevel: Int = 3

    @Option(help: ArgumentHelp("Which tensors are zstd-compressed: auto (those zstd shrinks by 1/8 or more, up to 1/16 of the tensor bytes: the norms, not the quantized matrices; the file is mapped as it is), always (the smallest file; unpacked once into <file>.unpacked on first use), never.",
                               valueName: "auto|always|never"))
    var compress: CompressionChoice?

    @Flag(help: "The same as --compress never.")
    var noCompress = false

    @Option(parsing: .unconditional, help: "Worker threads (default: one per core).")
    var threads: Int?

    @Flag(help: "Replace the output file if it exists.")
    var force = false

    @Flag(help: "Print each tensor's quantization error (relative RMS).")
    var report = false

    func validate() throws {
        if noCompress, let compress, compress != .never {
            throw ValidationError("--no-compress contradicts --compress \(compress.rawValue)")
        }
    }

    func run() throws {
        let compression = noCompress ? .never : compress ?? .auto
        let options = ConversionOptions(type: type.type, embeddingType: embeddingType?.type, compression: compression,
                                        zstdLevel: zstdLevel, threads: threads ?? 0, overwrite: force, report: report, pure: pure)
        let meter = ProgressMeter()
        let summary: ConversionSummary
        do {
            summary = try Converter.convert(checkpoint: checkpoint, output: output, options: options) { meter.update($0) }
        } catch {
            meter.finish()
            throw fail(error)
        }
        meter.finish()
        for notice in summary.notices { printErr("note: \(notice)") }
        if report {
            print("tensor".padding(toLength: 48, withPad: " ", startingAt: 0) + " type  shape               rel.RMS error")
            for t in summary.tensors {
                let shape = t.shape.map(String.init).joined(separator: "x")
                let err = t.relativeRMSError.map { String(format: "%.3e", $0) } ?? "-"
                print(t.name.padding(toLength: 48, withPad: " ", startingAt: 0) + " "
                      + t.type.description.padding(toLength: 5, withPad: " ", startingAt: 0) + " "
                      + shape.padding(toLength: 19, withPad: " ", startingAt: 0) + " " + err)
            }
        }
        print(String(format: "wrote %@: %.1f MB, %d tensors, %.2f M parameters",
                     summary.outputPath, Double(summary.outputBytes) / 1e6, summary.tensors.count, Double(summary.parameterCount) / 1e6))
        print("tensor types: " + summary.typeCounts)
        print("zstd-compressed: \(summary.compressedTensorCount) of \(summary.tensors.count) tensors (--compress \(compression.rawValue))")
        print(String(format: "bits per weight: %.3f (%.3f as stored), compression ratio %.3f",
                     summary.bitsPerWeight, summary.storedBitsPerWeight, summary.compressionRatio))
        print(String(format: "input %.1f MB in %.2f s: %.0f MB/s", Double(summary.inputBytes) / 1e6, summary.seconds,
                     summary.inputMegabytesPerSecond))
    }
}

func printErr(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// "tensor i/N, MB/s, ETA" on stderr, only when stderr is a terminal.
final class ProgressMeter {
    private let enabled = isatty(2) == 1
    private let start = Date()
    private var lastDraw = Date.distantPast

    func update(_ p: Converter.Progress) {
        guard enabled, Date().timeIntervalSince(lastDraw) > 0.2 || p.inputBytesDone == p.inputBytesTotal else { return }
        lastDraw = Date()
        let elapsed = Date().timeIntervalSince(start)
        let rate = Double(p.inputBytesDone) / max(elapsed, 1e-3)
        let eta = rate > 0 ? Double(p.inputBytesTotal - p.inputBytesDone) / rate : 0
        let line = String(format: "[%d/%d] %@  %.0f MB/s  ETA %.0fs", min(p.tensorIndex + 1, p.tensorCount), p.tensorCount,
                          p.tensorName, rate / 1e6, eta)
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}

extension CompressionChoice: ExpressibleByArgument {}
