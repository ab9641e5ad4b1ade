import Foundation
import GemmaKernels
import GemmaTiny

/// Converts a Hugging Face Gemma checkpoint into a model file.
///
/// Streaming: the safetensors files are mapped, and each tensor is processed in chunks of rows
/// (one zstd frame each) by a few workers at a time, so memory stays at a few frames per thread
/// whatever the model's size. The output is written to an unnamed temporary file and linked into
/// place only when complete (see ModelFileWriter); the input is only ever read.
public enum Converter {
    public struct Progress: Sendable {
        public var tensorIndex: Int
        public var tensorCount: Int
        public var tensorName: String
        public var inputBytesDone: Int
        public var inputBytesTotal: Int
    }

    public static let toolName = "gemma-quantize \(gemmaTinyVersion)"

    public static func convert(checkpoint folder: String, output: String, options: ConversionOptions,
                               progress: (Progress) -> Void = { _ in }) throws(ConversionError) -> ConversionSummary {
        try options.validate()
        let start = Date()
        let checkpoint = try Checkpoint(folder: folder)
        let config = checkpoint.config.config
        let (vocabulary, tokenizerSettings): (TokenizerVocabulary, TokenizerSettings)
        do { (vocabulary, tokenizerSettings) = try SentencePieceModelReader.read(path: checkpoint.tokenizerPath) } catch {
            throw .invalidTokenizer(file: checkpoint.tokenizerPath, reason: error.problem)
        }
        guard tokenizerSettings.model == "bpe" else {
            throw .invalidTokenizer(file: checkpoint.tokenizerPath, reason: "model type \(tokenizerSettings.model); Gemma uses BPE")
        }
        guard vocabulary.count <= config.vocabSize else {
            throw .invalidTokenizer(file: checkpoint.tokenizerPath,
                                    reason: "\(vocabulary.count) pieces but config.json vocab_size is \(config.vocabSize)")
        }
        var notices: [String] = []
        if vocabulary.count < config.vocabSize {
            notices.append("tokenizer has \(vocabulary.count) pieces, the embedding \(config.vocabSize) rows; the extra ids decode to nothing")
        }

        let plan = TensorPlan(config: config, type: options.type, embeddingType: options.resolvedEmbeddingType)
        let planned = Set(plan.entries.map(\.name))
        for name in checkpoint.tensors.keys.sorted() where !planned.contains(name) {
            guard TensorPlan.isIgnorable(name) else { throw .unexpectedTensor(name) }
            notices.append("ignored \(name) (the LM head is tied to the embedding; RoPE is computed)")
        }
        // Check every tensor before writing anything.
        for entry in plan.entries {
            guard let source = checkpoint.tensors[entry.name] else { throw .missingTensor(entry.name) }
            guard source.tensor.shape == entry.shape else {
                throw .shapeMismatch(tensor: entry.name, expected: entry.shape, found: source.tensor.shape)
            }
            if let note = entry.note { notices.append("\(entry.name): \(note)") }
        }

        let sourceDtype = checkpoint.tensors[TensorPlan.embeddingName]!.tensor.dtype.name
        let metadata = ModelMetadata(
            config: config,
            tokenizer: tokenizerSettings,
            quantization: QuantizationInfo(type: options.type, embeddingType: options.resolvedEmbeddingType,
                                           blockSize: Int(GT_BLOCK), zstdLevel: options.compress ? options.zstdLevel : nil),
            provenance: Provenance(tool: toolName, sourceFormat: "safetensors", sourceArchitecture: checkpoint.config.architecture,
                                   sourceDtype: checkpoint.config.dtype ?? sourceDtype, sourceFiles: checkpoint.sourceFiles))

        let writer: ModelFileWriter
        do {
            writer = try ModelFileWriter(destination: output, metadata: metadata, vocabulary: vocabulary, overwrite: options.overwrite)
        } catch { throw .output("cannot write \(output): \(error)") }

        let inputTotal = plan.entries.reduce(0) { $0 + checkpoint.tensors[$1.name]!.tensor.range.count }
        var inputDone = 0
        var reports: [ConversionSummary.TensorReport] = []
        let pipeline = ChunkPipeline(threads: options.resolvedThreads, compress: options.compress,
                                     zstdLevel: options.zstdLevel, measureError: options.report)
        do {
            for (i, entry) in plan.entries.enumerated() {
                let source = checkpoint.tensors[entry.name]!
                progress(Progress(tensorIndex: i, tensorCount: plan.entries.count, tensorName: entry.name,
                                  inputBytesDone: inputDone, inputBytesTotal: inputTotal))
                let result = try pipeline.run(entry: entry, source: source.tensor, bytes: source.file.bytes(source.tensor),
                                              writer: writer, sourceRelease: { source.file.release(source.tensor, bytes: $0) }) { done in
                    progress(Progress(tensorIndex: i, tensorCount: plan.entries.count, tensorName: entry.name,
                                      inputBytesDone: inputDone + done, inputBytesTotal: inputTotal))
                }
                inputDone += source.tensor.range.count
                reports.append(.init(name: entry.name, type: entry.type, shape: entry.shape,
                                     storedBytes: result.storedBytes, relativeRMSError: result.relativeRMSError))
            }
            progress(Progress(tensorIndex: plan.entries.count, tensorCount: plan.entries.count, tensorName: "",
                              inputBytesDone: inputTotal, inputBytesTotal: inputTotal))
        } catch let error as ConversionError {
            writer.discard()
            throw error
        } catch {
            writer.discard()
            throw .output("cannot write \(output): \(error)")
        }
        let outputBytes: Int
        do { outputBytes = try writer.finish() } catch { throw .output("cannot write \(output): \(error)") }

        let parameters = plan.entries.reduce(0) { $0 + $1.shape.reduce(1, *) }
        let tensorBytes = plan.entries.reduce(0) { $0 + (TensorInfo.expectedLength(type: $1.type, shape: $1.shape) ?? 0) }
        return ConversionSummary(outputPath: output, outputBytes: outputBytes, inputBytes: inputTotal,
                                 parameterCount: parameters, tensorBytes: tensorBytes,
                                 storedBytes: reports.reduce(0) { $0 + $1.storedBytes },
                                 seconds: Date().timeIntervalSince(start), tensors: reports, notices: notices)
    }
}
