import Foundation
import GemmaKernels
import GemmaQuantizeKernels
import GemmaTiny

/// Converts a Hugging Face Gemma checkpoint (or a GGUF file) into a model file.
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

    /// A tensor to convert: where its rows are and how to read them.
    struct Source {
        var bytes: UnsafeRawBufferPointer
        var inRowBytes: Int
        var decoder: RowDecoder
        var release: (Range<Int>) -> Void
        var prefetch: (Range<Int>) -> Void
    }

    /// Converts a checkpoint folder (config.json, *.safetensors, tokenizer.model) or a GGUF file
    /// (recognised by its magic) into a model file.
    public static func convert(checkpoint path: String, output: String, options: ConversionOptions,
                               progress: (Progress) -> Void = { _ in }) throws(ConversionError) -> ConversionSummary {
        try options.validate()
        try OutputPathCheck.checkKind(output: output)
        let start = Date()
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
            // Checked before reading the magic: reading a FIFO would wait for a writer forever.
            guard isRegularFile(path) else {
                throw .invalidOption("\(path) is not a regular file: give a checkpoint folder or a GGUF file")
            }
            guard GGUFFile.hasMagic(path: path) else {
                throw .invalidOption("\(path) is neither a checkpoint folder (config.json, *.safetensors, tokenizer.model) nor a GGUF file (it does not start with 'GGUF')")
            }
            try OutputPathCheck.checkNotAnInput(output: output, inputs: [path])
            return try convertGGUF(path: path, output: output, options: options, start: start, progress: progress)
        }
        let checkpoint = try Checkpoint(folder: path)
        try OutputPathCheck.checkNotAnInput(output: output, inputs: checkpoint.inputPaths)
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
        // The runtime builds its tokenizer from what is written here: one it would refuse (no
        // UNKNOWN piece because <unk> is typed CONTROL, say) is refused now, with its message.
        do { _ = try Tokenizer(vocabulary: vocabulary, settings: tokenizerSettings) } catch {
            throw .invalidTokenizer(file: checkpoint.tokenizerPath, reason: error.description)
        }
        var notices: [String] = []
        if vocabulary.count < config.vocabSize {
            notices.append("tokenizer has \(vocabulary.count) pieces, the embedding \(config.vocabSize) rows; the extra ids decode to nothing")
        }

        let plan = TensorPlan(config: config, options: options)
        let planned = Set(plan.entries.map(\.name))
        for name in checkpoint.tensors.keys.sorted() where !planned.contains(name) {
            guard TensorPlan.isIgnorable(name) else { throw .unexpectedTensor(name) }
            notices.append("ignored \(name) (the LM head is tied to the embedding; RoPE is computed)")
        }
        // Check every tensor before writing anything.
        for entry in plan.entries {
            guard let source = checkpoint.tensors[entry.name] else {
                throw .missingTensor(config.architecture == .gemma ? entry.name : "\(entry.name) (which a \(checkpoint.config.architecture) checkpoint has)")
            }
            guard source.tensor.shape == entry.shape else {
                throw .shapeMismatch(tensor: entry.name, expected: entry.shape, found: source.tensor.shape)
            }
            if let note = entry.note { notices.append("\(entry.name): \(note)") }
        }

        let sourceDtype = checkpoint.tensors[TensorPlan.embeddingName]!.tensor.dtype.name
        let provenance = Provenance(tool: toolName, sourceFormat: "safetensors", sourceArchitecture: checkpoint.config.architecture,
                                    sourceDtype: checkpoint.config.dtype ?? sourceDtype, sourceFiles: checkpoint.sourceFiles)
        var sources: [String: Source] = [:]
        for entry in plan.entries {
            let source = checkpoint.tensors[entry.name]!
            let srcType: Int32 = switch source.tensor.dtype {
            case .f32: Int32(GT_SRC_F32)
            case .bf16: Int32(GT_SRC_BF16)
            case .f16: Int32(GT_SRC_F16)
            }
            sources[entry.name] = Source(bytes: source.file.bytes(source.tensor), inRowBytes: entry.shape.last! * source.tensor.dtype.size,
                                         decoder: .widen(srcType), release: { source.file.release(source.tensor, bytes: $0) },
                                         prefetch: { source.file.prefetch(source.tensor, bytes: $0) })
        }
        return try write(plan: plan, sources: sources, config: config, vocabulary: vocabulary, tokenizer: tokenizerSettings,
                         provenance: provenance, notices: notices, output: output, options: options, start: start, progress: progress)
    }

    static func convertGGUF(path: String, output: String, options: ConversionOptions, start: Date,
                            progress: (Progress) -> Void) throws(ConversionError) -> ConversionSummary {
        let gguf = try GGUFCheckpoint(path: path)
        let config = gguf.config
        var notices = gguf.notices
        let plan = TensorPlan(config: config, options: options) { name in
            gguf.tensors[name].flatMap { options.typeForQuantizedSource($0.type.name, tensor: name) }
        }
        let byType = Dictionary(grouping: plan.entries.filter { $0.shape.count == 2 && $0.name != TensorPlan.embeddingName },
                                by: \.type)
        if ConversionOptions.typeForQuantizedSource("Q5_0", type: options.type, pure: options.pure) != nil,
           gguf.tensors.values.contains(where: { ConversionOptions.typeForQuantizedSource($0.type.name, type: options.type, pure: options.pure) != nil }) {
            let counts = byType.keys.sorted { $0.rawValue < $1.rawValue }.map { "\(byType[$0]!.count) at \($0)" }
            notices.append("the GGUF is already quantized: its weight matrices follow its own types (\(counts.joined(separator: ", "))); --pure requantizes them to \(options.type) (its fallback type where a row is not whole \(options.type) blocks)")
        }
        let planned = Set(plan.entries.map(\.name))
        for (name, t) in gguf.tensors.sorted(by: { $0.key < $1.key }) where !planned.contains(name) {
            throw .unexpectedTensor("\(t.name) (\(name)) in \(path)")
        }
        for (name, reason) in gguf.ignored { notices.append("ignored \(name): \(reason)") }
        var sources: [String: Source] = [:]
        for entry in plan.entries {
            guard let t = gguf.tensors[entry.name] else {
                throw .missingTensor("\(entry.name) (in \(path), for the \(gguf.architecture.rawValue) architecture)")
            }
            guard t.shape == entry.shape else {
                throw .shapeMismatch(tensor: "\(t.name) (\(entry.name))", expected: entry.shape, found: t.shape)
            }
            guard gt_gguf_can_dequantize(Int32(t.type.id)) != 0 else {
                throw .unsupportedGGUFType(file: path, tensor: t.name, type: t.type.name)
            }
            if let note = entry.note { notices.append("\(entry.name): \(note)") }
            // llama.cpp stored every norm weight as 1 + w.
            let subtract: Float = entry.kind.isNorm ? 1 : 0
            // A K-quant tensor stored as its own type keeps its bytes: no requantization.
            let copies = Self.sameLayout[t.type.name] == entry.type && t.rowBytes == entry.type.rowBytes(entry.shape.last!)
            sources[entry.name] = Source(bytes: gguf.file.bytes(t), inRowBytes: t.rowBytes,
                                         decoder: copies ? .copy(type: Int32(t.type.id)) : .gguf(type: Int32(t.type.id), subtract: subtract),
                                         release: { gguf.file.release(t, bytes: $0) },
                                         prefetch: { gguf.file.prefetch(t, bytes: $0) })
        }
        let provenance = Provenance(tool: toolName, sourceFormat: "gguf", sourceArchitecture: gguf.architecture.rawValue,
                                    sourceDtype: gguf.sourceTypes, sourceFiles: gguf.sourceFiles)
        return try write(plan: plan, sources: sources, config: config, vocabulary: gguf.vocabulary, tokenizer: gguf.tokenizerSettings,
                         provenance: provenance, notices: notices, output: output, options: options, start: start, progress: progress)
    }

    /// ggml types whose blocks are byte for byte one of ours: a tensor planned as that type is
    /// copied. (Q8_0, Q4_0 and Q5_0 are too, but go through the quantizer, whose scale search
    /// recovers their bytes; the files they make stay as they were.)
    static let sameLayout: [String: StorageType] = ["Q4_K": .q4k, "Q6_K": .q6k]

    /// Writes the model file: every planned tensor, in plan order, from its source.
    static func write(plan: TensorPlan, sources: [String: Source], config: ModelConfig, vocabulary: TokenizerVocabulary,
                      tokenizer: TokenizerSettings, provenance: Provenance, notices: [String], output: String,
                      options: ConversionOptions, start: Date, progress: (Progress) -> Void) throws(ConversionError) -> ConversionSummary {
        // The embedding's type as written: a row that is not whole blocks, or a GGUF's own type,
        // can make it differ from the one asked for.
        let embeddingType = plan.entries.first { $0.name == TensorPlan.embeddingName }?.type ?? options.resolvedEmbeddingType
        let metadata = ModelMetadata(
            config: config,
            tokenizer: tokenizer,
            quantization: QuantizationInfo(type: options.type, embeddingType: embeddingType,
                                           blockSize: max(Int(GT_BLOCK), options.type.blockSize), zstdLevel: options.compression == .never ? nil : options.zstdLevel),
            provenance: provenance)

        let writer: ModelFileWriter
        do {
            writer = try ModelFileWriter(destination: output, metadata: metadata, vocabulary: vocabulary, overwrite: options.overwrite,
                                         streaming: true)
        } catch { throw outputError(error, output: output) }

        func inputBytes(_ e: TensorPlan.Entry) -> Int { e.shape.reduce(1, *) / e.shape.last! * sources[e.name]!.inRowBytes }
        let inputTotal = plan.entries.reduce(0) { $0 + inputBytes($1) }
        // Input bytes before each tensor.
        var inputBefore: [Int] = []
        var inputDone = 0
        for entry in plan.entries {
            inputBefore.append(inputDone)
            inputDone += inputBytes(entry)
        }
        let jobs = plan.entries.map { entry in
            let source = sources[entry.name]!
            return ChunkPipeline.Job(entry: entry, decoder: source.decoder, inRowBytes: source.inRowBytes,
                                     bytes: source.bytes, release: source.release, prefetch: source.prefetch)
        }
        let pipeline = ChunkPipeline(threads: options.resolvedThreads, compression: options.compression,
                                     zstdLevel: options.zstdLevel, measureError: options.report)
        var reports: [ConversionSummary.TensorReport] = []
        do {
            let results = try pipeline.run(jobs: jobs, writer: writer) { index, done in
                progress(Progress(tensorIndex: index, tensorCount: plan.entries.count, tensorName: plan.entries[index].name,
                                  inputBytesDone: inputBefore[index] + done, inputBytesTotal: inputTotal))
            }
            for (entry, result) in zip(plan.entries, results) {
                reports.append(.init(name: entry.name, type: entry.type, shape: entry.shape,
                                     storedBytes: result.storedBytes, compressed: result.compressed, relativeRMSError: result.relativeRMSError))
            }
            progress(Progress(tensorIndex: plan.entries.count, tensorCount: plan.entries.count, tensorName: "",
                              inputBytesDone: inputTotal, inputBytesTotal: inputTotal))
        } catch let error as ConversionError {
            writer.discard()
            throw error
        } catch {
            writer.discard()
            throw outputError(error, output: output)
        }
        let outputBytes: Int
        do { outputBytes = try writer.finish() } catch { throw outputError(error, output: output) }

        let parameters = plan.entries.reduce(0) { $0 + $1.shape.reduce(1, *) }
        let tensorBytes = plan.entries.reduce(0) { $0 + (TensorInfo.expectedLength(type: $1.type, shape: $1.shape) ?? 0) }
        return ConversionSummary(outputPath: output, outputBytes: outputBytes, inputBytes: inputTotal,
                                 parameterCount: parameters, tensorBytes: tensorBytes,
                                 storedBytes: reports.reduce(0) { $0 + $1.storedBytes },
                                 seconds: Date().timeIntervalSince(start), tensors: reports, notices: notices)
    }

    /// A failure to write `output`. The writer's messages usually name the file already
    /// ("cannot write m.gtm: No space left on device"): those are kept as they are, others get
    /// the file name in front.
    static func outputError(_ error: any Error, output: String) -> ConversionError {
        let message = "\(error)"
        return .output(message.contains(output) ? message : "cannot write \(output): \(message)")
    }

    /// True when `path` is a regular file starting with the GGUF magic (anything else, a FIFO
    /// included, is never read).
    public static func isGGUF(path: String) -> Bool { GGUFFile.hasMagic(path: path) }

    static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }
}
