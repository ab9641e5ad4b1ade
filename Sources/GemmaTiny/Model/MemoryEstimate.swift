import Foundation

/// What running a model takes in memory, worked out from its file's header before any tensor is
/// touched: the tensor data as mapped (the unpacked size, whether the file is compressed or
/// not), the KV cache for the context (sliding-window layers only their window; keys and values
/// of 4 bytes, or 2 with an f16 cache), the activation buffers of one session, and an allowance for the rest (code,
/// tokenizer tables, heap).
///
/// The KV cache is counted in full although pages are only taken as positions fill: a context
/// that is used will take it.
public struct MemoryEstimate: Sendable, Equatable {
    public var weightBytes: Int
    public var kvCacheBytes: Int
    public var activationBytes: Int
    public var runtimeBytes: Int
    /// The context length the KV cache is counted for.
    public var contextLength: Int
    /// The KV cache's element type it is counted for.
    public var cacheType: KVCacheType

    public var totalBytes: Int { weightBytes + kvCacheBytes + activationBytes + runtimeBytes }

    /// What one session needs besides the weights.
    public struct Session: Sendable, Equatable {
        /// nil = the model's maximum; larger values are capped at it, as the CLI does.
        public var contextLength: Int?
        public var batchSize: Int
        /// Matmul threads (0 = one per core): attention keeps a score row per thread.
        public var threads: Int
        /// How the KV cache stores keys and values (default f16, as the command line's `--cache-type`).
        public var cacheType: KVCacheType

        public init(contextLength: Int? = nil, batchSize: Int = InferenceSession.defaultBatchSize, threads: Int = 0,
                    cacheType: KVCacheType = .default) {
            self.contextLength = contextLength
            self.batchSize = batchSize
            self.threads = threads
            self.cacheType = cacheType
        }
    }

    /// Code (the executable, the Swift runtime and Foundation libraries), stacks and heap: the
    /// gemma-tiny executable peaks at 26–28 MiB of RSS on the tiny fixture model (x86-64 Linux,
    /// 2.5 MiB of it anonymous), and takes ~3 MiB of anonymous memory beyond the KV cache and
    /// activations on the 2B shape.
    static let baseRuntimeBytes = 32 << 20
    /// The tokenizer's tables take about this many times the vocabulary section's bytes.
    static let tokenizerBytesPerVocabularyByte = 4

    /// The estimate for `file` (its header and tensor table only).
    public init(file: ModelFile, session: Session) throws(ModelError) {
        let weights = file.tensorBytes
        try self.init(config: file.metadata.config, weightBytes: weights,
                      vocabularyBytes: file.header.tokenizer.count, session: session)
    }

    public init(config: ModelConfig, weightBytes: Int, vocabularyBytes: Int, session: Session) throws(ModelError) {
        let variant = try GemmaVariant(config: config)
        let ctx = max(1, min(session.contextLength ?? config.maxPositionEmbeddings, config.maxPositionEmbeddings))
        let batch = min(max(1, session.batchSize), ctx)
        self.weightBytes = weightBytes
        kvCacheBytes = Self.kvCacheBytes(variant: variant, config: config, contextLength: ctx, cacheType: session.cacheType)
        let buffers = ActivationBuffers.Sizes(config: config, ropeCount: variant.ropeThetas.count, batchSize: batch)
        // Plus the logits rows of a prefill that scores every token (perplexity).
        let logitRows = InferenceSession.logitRowCapacity(batchSize: batch) * config.vocabSize
        // An f16 cache also keeps the batch's keys and values as halves.
        let halves = session.cacheType == .f16 ? 2 * batch * config.numKeyValueHeads * config.headDim : 0
        activationBytes = (buffers.totalFloats + logitRows) * MemoryLayout<Float>.size + halves * 2
        runtimeBytes = Self.baseRuntimeBytes + Self.tokenizerBytesPerVocabularyByte * vocabularyBytes
        contextLength = ctx
        cacheType = session.cacheType
    }

    /// Keys and values of every layer: per layer its capacity (the context, or the window of a
    /// sliding layer) x 2 x KV heads x head dim x 4 bytes (2 for f16), as `KVCache` lays them out.
    static func kvCacheBytes(variant: GemmaVariant, config: ModelConfig, contextLength: Int,
                             cacheType: KVCacheType = .f32) -> Int {
        let kvDim = config.numKeyValueHeads * config.headDim
        let positions = variant.layers.indices.reduce(0) { $0 + variant.cacheCapacity(layer: $1, contextLength: contextLength) }
        return positions * 2 * kvDim * cacheType.bytesPerElement
    }
}
