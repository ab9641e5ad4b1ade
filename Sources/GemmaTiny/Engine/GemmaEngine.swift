import Foundation

/// A loaded Gemma model, ready to serve many independent conversations: the entry point for
/// embedding gemma-tiny in an app or a device daemon.
///
/// ```swift
/// let engine = try await GemmaEngine.load(path: "/var/lib/models/gemma-2b-it.gtm")
/// let session = try engine.makeSession()
/// for try await event in session.chat(messages: [.user("Hello!")]) {
///     if case .chunk(let chunk) = event { print(chunk.text, terminator: "") }
/// }
/// ```
///
/// An engine holds:
/// - the model's weights, memory-mapped once (``model``) and shared read-only by every session;
/// - the tokenizer and the chat template;
/// - one **compute thread**, on which every model step of every session runs, with the matmul
///   kernels and their worker pool. The pool is not reentrant (see `WorkerPool`): running all
///   steps on one thread guarantees that two sessions never use it at the same time.
///
/// **Scheduling.** Sessions can be used from any number of tasks at once. Their generations
/// are interleaved on the compute thread round-robin, one step at a time: a step is one
/// generated token, or one chunk of prompt (``Options/prefillChunkSize`` tokens). At most
/// ``Options/maxConcurrentGenerations`` generations are interleaved; later ones wait in
/// arrival order. Two generations on the *same* session run one after the other, in the order
/// they were requested. On a small CPU the total speed is the same either way (one token at a
/// time uses all the cores); interleaving gives every conversation a steady stream instead of
/// making the last one wait for all the others to finish.
///
/// **Cancellation.** Cancelling the task that consumes a generation stream (or dropping the
/// stream) stops that generation at its next step, within one token, and frees its session
/// for the next request. ``GemmaSession/cancel()`` does the same from outside the consumer.
///
/// `GemmaEngine` is `Sendable`; share one instance. Loading the same file twice maps it twice.
public final class GemmaEngine: Sendable {
    /// How an engine loads and runs its model.
    public struct Options: Sendable {
        /// Threads for the matrix products, the compute thread included; 0 = one per core.
        public var threads: Int
        /// Where a zstd-compressed model file is unpacked (see `ModelLoader`).
        public var unpack: ModelLoader.UnpackMode
        /// Matmul kernels to use instead of the default ones for `threads`.
        public var kernels: (any MatmulKernels)?
        /// Context length of new sessions (KV-cache positions); nil = the model's maximum.
        /// A session's cache is reserved, not allocated: only positions used take memory.
        public var contextLength: Int?
        /// How sessions' KV caches store keys and values: f16 by default (`KVCacheType.default`,
        /// as llama.cpp: half the memory, perplexity +0.016% on Gemma 3 270M), or f32 (exact, as
        /// `InferenceSession` computes by default).
        public var cacheType: KVCacheType
        /// How many generations are interleaved on the compute thread (at least 1; 1 = strict
        /// first-come first-served). Later generations wait.
        public var maxConcurrentGenerations: Int
        /// Prompt tokens run in one step (one pass through the layers): larger is faster for
        /// long prompts, smaller keeps other conversations' tokens flowing while a long prompt
        /// is read, and bounds how long a cancellation takes during prompt processing.
        public var prefillChunkSize: Int
        /// The model's name; nil = the file name without its extension.
        public var name: String?
        /// Test hook: pause after every step.
        @_spi(Testing) public var stepDelay: Duration = .zero

        public init(threads: Int = 0, unpack: ModelLoader.UnpackMode = .sibling, kernels: (any MatmulKernels)? = nil,
                    contextLength: Int? = nil, maxConcurrentGenerations: Int = 4, prefillChunkSize: Int = 16,
                    name: String? = nil, cacheType: KVCacheType = .default) {
            self.threads = threads
            self.cacheType = cacheType
            self.unpack = unpack
            self.kernels = kernels
            self.contextLength = contextLength
            self.maxConcurrentGenerations = maxConcurrentGenerations
            self.prefillChunkSize = prefillChunkSize
            self.name = name
        }

        func validate() throws(EngineError) {
            guard threads >= 0 else { throw .invalidOptions("threads must be >= 0 (0 = one per core), got \(threads)") }
            guard maxConcurrentGenerations >= 1 else {
                throw .invalidOptions("maxConcurrentGenerations must be at least 1, got \(maxConcurrentGenerations)")
            }
            guard prefillChunkSize >= 1 else {
                throw .invalidOptions("prefillChunkSize must be at least 1, got \(prefillChunkSize)")
            }
            if let c = contextLength, c < 1 { throw .invalidOptions("contextLength must be at least 1, got \(c)") }
        }
    }

    /// The weights, shared by every session.
    public let model: GemmaModel
    public let tokenizer: Tokenizer
    public let options: Options
    /// The model's name: the file name without its extension, unless ``Options/name`` says otherwise.
    public let name: String
    /// The path the model was loaded from.
    public let path: String
    /// The kernels every session uses.
    public let kernels: any MatmulKernels
    /// Context length of sessions made without one.
    public let defaultContextLength: Int
    let scheduler: ComputeScheduler
    /// Token bytes for constrained (JSON) replies, built on first use.
    let tokenIndex = TokenByteIndexCache()

    /// Loads a model file (unpacking a compressed one once, see `ModelLoader`) and starts the
    /// engine's compute thread. The file is read on a thread of its own, not on Swift's
    /// cooperative pool.
    ///
    /// - Throws: ``EngineError/modelLoad(path:_:)`` naming the file and what is wrong with it,
    ///   ``EngineError/invalidOptions(_:)``, ``EngineError/tokenizer(_:)``.
    public static func load(path: String, options: Options = Options()) async throws(EngineError) -> GemmaEngine {
        try options.validate()
        let unpack = options.unpack
        let result: Result<GemmaModel, ModelError> = await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(returning: Result { () throws(ModelError) -> GemmaModel in
                    try GemmaModel.load(path: path, unpack: unpack)
                })
            }
            thread.name = "gemma-tiny loader"
            thread.start()
        }
        switch result {
        case .success(let model): return try GemmaEngine(model: model, path: path, options: options)
        case .failure(let error): throw .modelLoad(path: path, error)
        }
    }

    /// An engine for a model already loaded (`GemmaModel.load`).
    public convenience init(model: GemmaModel, options: Options = Options()) throws(EngineError) {
        try self.init(model: model, path: model.file.path, options: options)
    }

    init(model: GemmaModel, path: String, options: Options) throws(EngineError) {
        try options.validate()
        do {
            tokenizer = try Tokenizer(vocabulary: model.file.vocabulary, settings: model.file.metadata.tokenizer)
        } catch {
            throw .tokenizer(error)
        }
        let maximum = model.config.maxPositionEmbeddings
        if let c = options.contextLength, c > maximum {
            throw .invalidOptions("contextLength \(c) is more than the model's maximum, \(maximum)")
        }
        self.model = model
        self.options = options
        self.path = path
        name = options.name ?? GemmaEngine.modelName(forPath: path)
        kernels = options.kernels ?? makeDefaultKernels(threads: options.threads)
        defaultContextLength = options.contextLength ?? maximum
        scheduler = ComputeScheduler(maxActive: options.maxConcurrentGenerations, stepDelay: options.stepDelay)
        scheduler.start(name: "gemma-compute")
    }

    deinit {
        scheduler.shutDown()
    }

    /// The file name without directories and without its extension (`/models/gemma-2b-it.gtm`
    /// -> `gemma-2b-it`; an unpacked sibling `x.gtm.unpacked` -> `x`).
    public static func modelName(forPath path: String) -> String {
        var file = (path as NSString).lastPathComponent
        if file.hasSuffix(".unpacked") && file.count > 9 { file = String(file.dropLast(9)) }
        let stem = (file as NSString).deletingPathExtension
        return stem.isEmpty ? file : stem
    }

    /// The model's maximum context (`max_position_embeddings`).
    public var maximumContextLength: Int { model.config.maxPositionEmbeddings }

    /// Opens a new conversation with its own KV cache. Sessions are cheap to keep: the cache is
    /// reserved for `contextLength` positions but takes memory only as it fills.
    ///
    /// - Parameter contextLength: KV-cache positions; nil = ``Options/contextLength`` or the
    ///   model's maximum.
    /// - Throws: ``EngineError/sessionCreation(_:)`` for a length outside 1...maximum or when
    ///   the cache cannot be reserved; ``EngineError/shutDown``.
    public func makeSession(contextLength: Int? = nil) throws(EngineError) -> GemmaSession {
        guard !scheduler.isStopping else { throw .shutDown }
        let inference: InferenceSession
        do {
            inference = try InferenceSession(model: model, contextLength: contextLength ?? defaultContextLength,
                                             kernels: kernels, batchSize: options.prefillChunkSize,
                                             cacheType: options.cacheType)
        } catch {
            throw .sessionCreation(error)
        }
        return GemmaSession(engine: self, state: SessionState(inference: inference))
    }

    /// Tokens `text` encodes to, as plain text: no `<bos>`, control tokens not parsed.
    public func countTokens(_ text: String) -> Int { tokenizer.encode(text).count }

    /// Tokens of the prompt ``GemmaSession/chat(messages:options:)`` would run for `messages`,
    /// `<bos>` and the chat template included.
    public func countTokens(messages: [ChatMessage]) throws(EngineError) -> Int {
        try GemmaChatTemplate.tokens(for: messages, tokenizer: tokenizer).count
    }

    /// The token ids of `text` (no `<bos>`), for callers that build prompts themselves.
    public func tokenize(_ text: String) -> [Int] { tokenizer.encode(text) }

    /// The text of token ids.
    public func detokenize(_ tokens: [Int]) -> String { tokenizer.decode(tokens) }

    /// A snapshot of the engine's counters.
    public var stats: EngineStats { scheduler.stats }

    /// Cancels every queued and running generation of every session: each ends with a
    /// `.cancelled` summary. The engine stays usable.
    public func cancelAll() {
        scheduler.cancelJobs(of: nil, reason: .requested)
    }

    /// Stops the engine: new requests fail with ``EngineError/shutDown``, queued and running
    /// generations end with that error, and the compute thread exits. Returns when it has.
    /// To let running generations finish first, wait for them (or use a grace period, as
    /// `gemma-tiny serve` does) before calling this.
    public func shutdown() async {
        scheduler.shutDown()
        await scheduler.waitForExit()
    }
}
