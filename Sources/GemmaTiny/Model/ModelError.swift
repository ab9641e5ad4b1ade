/// Why a model cannot be loaded or run. Messages are one line.
public enum ModelError: Error, Equatable, CustomStringConvertible, Sendable {
    /// Problems with the file itself (missing tensor, wrong shape, corrupt, cannot open...).
    case file(ModelFileError)
    /// The file holds an architecture this runtime cannot run (yet).
    case unsupportedArchitecture(String)
    /// A configuration value this runtime does not implement.
    case unsupportedConfiguration(String)
    /// A tensor the runtime cannot use as it is stored.
    case unsupportedTensor(name: String, reason: String)
    /// A context length outside 1...max_position_embeddings.
    case invalidContextLength(requested: Int, maximum: Int)
    /// The KV cache or activation buffers cannot be allocated.
    case outOfMemory(String)

    public var description: String {
        switch self {
        case .file(let e): return e.description
        case .unsupportedArchitecture(let a): return ModelArchitecture.unsupportedMessage(a)
        case .unsupportedConfiguration(let what): return "unsupported model configuration: \(what)"
        case .unsupportedTensor(let name, let reason): return "tensor \(name): \(reason)"
        case .invalidContextLength(let requested, let maximum):
            return "context length \(requested) is out of range: it must be between 1 and the model's maximum, \(maximum)"
        case .outOfMemory(let what): return "out of memory: \(what)"
        }
    }
}

/// Errors while running a session.
public enum InferenceError: Error, Equatable, CustomStringConvertible, Sendable {
    /// Every position of the KV cache is used.
    case contextFull(contextLength: Int)
    case tokenOutOfRange(token: Int, vocabularySize: Int)
    /// The logits hold a NaN or an infinity: damaged weights (an uncompressed file's tensor
    /// checksums are checked by `gemma-quantize verify`, not on every start).
    case nonFiniteLogits

    public var description: String {
        switch self {
        case .contextFull(let n): return "the context is full (\(n) tokens)"
        case .tokenOutOfRange(let t, let v): return "token id \(t) is outside the vocabulary (0..<\(v))"
        case .nonFiniteLogits:
            return "the model computed a NaN or infinite logit: its weights are damaged (check the file with gemma-quantize verify)"
        }
    }
}
