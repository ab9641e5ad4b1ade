import Foundation
import GemmaKernels

/// RMSNorm weights as the forward pass uses them: `1 + w` in f32 (the file keeps Hugging Face's
/// raw `w`; transformers computes `(1.0 + w.float())` the same way).
public struct NormWeights: Sendable {
    public let name: String
    public let scale: [Float]
}

/// The weights of one decoder layer, a field per `ModelSchema.Role`. The optional norms are
/// those of Gemma 2/3 (`ModelArchitecture.hasPostNorms`, `hasQKNorm`).
public struct LayerWeights: Sendable {
    public let index: Int
    /// `input_layernorm`: before attention.
    public let inputNorm: NormWeights
    public let qProj: WeightMatrix
    public let kProj: WeightMatrix
    public let vProj: WeightMatrix
    /// `self_attn.q_norm` / `k_norm` ([head_dim], Gemma 3): each head's query and key, before RoPE.
    public let qNorm: NormWeights?
    public let kNorm: NormWeights?
    public let oProj: WeightMatrix
    /// Gemma 2/3 `post_attention_layernorm`: on the attention output, before the residual add.
    public let postAttentionNorm: NormWeights?
    /// Before the MLP: Gemma 2/3 `pre_feedforward_layernorm`, Gemma 1 `post_attention_layernorm`.
    public let preFeedforwardNorm: NormWeights
    public let gateProj: WeightMatrix
    public let upProj: WeightMatrix
    public let downProj: WeightMatrix
    /// Gemma 2/3 `post_feedforward_layernorm`: on the MLP output, before the residual add.
    public let postFeedforwardNorm: NormWeights?

    /// Every norm of the layer.
    var norms: [NormWeights] {
        [inputNorm, qNorm, kNorm, postAttentionNorm, preFeedforwardNorm, postFeedforwardNorm].compactMap { $0 }
    }

    /// A layer from its tensors by role, as `ModelSchema` lists them for the architecture.
    init(index: Int, matrices: [ModelSchema.Role: WeightMatrix], norms: [ModelSchema.Role: NormWeights]) {
        func matrix(_ role: ModelSchema.Role) -> WeightMatrix {
            guard let m = matrices[role] else { preconditionFailure("ModelSchema has no \(role) tensor for this architecture") }
            return m
        }
        func norm(_ role: ModelSchema.Role) -> NormWeights {
            guard let n = norms[role] else { preconditionFailure("ModelSchema has no \(role) tensor for this architecture") }
            return n
        }
        self.index = index
        inputNorm = norm(.inputNorm)
        qProj = matrix(.qProj)
        kProj = matrix(.kProj)
        vProj = matrix(.vProj)
        qNorm = norms[.qNorm]
        kNorm = norms[.kNorm]
        oProj = matrix(.oProj)
        postAttentionNorm = norms[.postAttentionNorm]
        preFeedforwardNorm = norm(.preFeedforwardNorm)
        gateProj = matrix(.gateProj)
        upProj = matrix(.upProj)
        downProj = matrix(.downProj)
        postFeedforwardNorm = norms[.postFeedforwardNorm]
    }
}

/// The immutable, shareable half of a model: the mapped file and the weight matrices resolved
/// and shape-checked against the configuration. Load once; create any number of
/// `InferenceSession`s (one per conversation) from it, on any threads.
public final class GemmaModel: Sendable {
    public let file: ModelFile
    public let config: ModelConfig
    public let architecture: ModelArchitecture
    /// Per-layer attention, scale, soft-capping: what the forward pass needs beyond the shapes.
    public let variant: GemmaVariant
    /// `model.embed_tokens.weight` (`ModelSchema.embedding`), [vocab, hidden]: the input
    /// embedding and the tied LM head.
    public let embedding: WeightMatrix
    public let layers: [LayerWeights]
    public let finalNorm: NormWeights

    /// Resolves every tensor of `file`, which must not be compressed (see `load`).
    public init(file: ModelFile) throws(ModelError) {
        let config = file.metadata.config
        architecture = config.architecture
        do {
            try config.validate()
        } catch {
            throw .file(ModelFileError(error))
        }
        variant = try GemmaVariant(config: config)
        // Gemma 1 uses the tanh-approximate GELU whatever its config.json says ("gelu" in early
        // files means the same in transformers' Gemma); anything else is not Gemma.
        guard Self.tanhGELUNames.contains(config.hiddenActivation) else {
            throw .unsupportedConfiguration("hidden_activation \"\(config.hiddenActivation)\" (Gemma uses gelu_pytorch_tanh)")
        }
        self.file = file
        self.config = config

        func matrix(_ name: String, _ rows: Int, _ cols: Int) throws(ModelError) -> WeightMatrix {
            let t: TensorInfo
            let bytes: UnsafeRawBufferPointer
            do {
                t = try file.requireTensor(name, shape: [rows, cols])
                bytes = try file.data(t)
            } catch {
                throw .file(error)
            }
            guard t.layout == .rowMajor else { throw .unsupportedTensor(name: name, reason: "layout \(t.layout) is not supported") }
            guard t.rowBytes > 0, bytes.count == rows * t.rowBytes, let base = bytes.baseAddress else {
                throw .unsupportedTensor(name: name, reason: "\(bytes.count) bytes do not hold \(rows) rows of \(cols) \(t.type) values")
            }
            // Every storage type the file format knows must also have matrix kernels in this
            // build (checked here, so that a gap is a load error rather than a failed precondition).
            guard gt_activation_bytes(Int32(t.type.rawValue), cols) > 0 else {
                throw .unsupportedTensor(name: name, reason: "this build has no matrix kernels for \(t.type) rows of \(cols) values")
            }
            return WeightMatrix(name: name, type: t.type, rows: rows, cols: cols, base: base)
        }
        func norm(_ name: String, size: Int) throws(ModelError) -> NormWeights {
            let m = try matrix1D(name, size)
            var w = [Float](repeating: 0, count: size)
            w.withUnsafeMutableBufferPointer { m.dequantizeRow(0, into: $0.baseAddress!) }
            guard w.allSatisfy({ $0.isFinite }) else { throw .unsupportedTensor(name: name, reason: "holds a NaN or infinity") }
            return NormWeights(name: name, scale: w.map { 1 + $0 })
        }
        func matrix1D(_ name: String, _ n: Int) throws(ModelError) -> WeightMatrix {
            let t: TensorInfo
            let bytes: UnsafeRawBufferPointer
            do {
                t = try file.requireTensor(name, shape: [n])
                bytes = try file.data(t)
            } catch {
                throw .file(error)
            }
            guard t.rowBytes > 0, bytes.count == t.rowBytes, let base = bytes.baseAddress else {
                throw .unsupportedTensor(name: name, reason: "\(bytes.count) bytes do not hold \(n) \(t.type) values")
            }
            return WeightMatrix(name: name, type: t.type, rows: 1, cols: n, base: base)
        }

        // Every tensor as ModelSchema lists it, in file order.
        let embeddingShape = ModelSchema.embedding.shape(in: config)
        embedding = try matrix(ModelSchema.embedding.name, embeddingShape[0], embeddingShape[1])
        var layers: [LayerWeights] = []
        layers.reserveCapacity(config.numHiddenLayers)
        for i in 0..<config.numHiddenLayers {
            var matrices: [ModelSchema.Role: WeightMatrix] = [:]
            var norms: [ModelSchema.Role: NormWeights] = [:]
            for t in ModelSchema.layerTensors(i, config: config) {
                if t.kind.isNorm {
                    norms[t.kind.role] = try norm(t.name, size: t.shape[0])
                } else {
                    matrices[t.kind.role] = try matrix(t.name, t.shape[0], t.shape[1])
                }
            }
            layers.append(LayerWeights(index: i, matrices: matrices, norms: norms))
        }
        self.layers = layers
        finalNorm = try norm(ModelSchema.finalNorm.name, size: ModelSchema.finalNorm.shape(in: config)[0])
    }

    /// Opens (unpacking a compressed file once, see `ModelLoader`) and resolves a model file.
    /// With `memoryCheck`, warns through `notice` first when the model will not fit in memory.
    public static func load(path: String, unpack: ModelLoader.UnpackMode = .sibling, memoryCheck: MemoryFit.Check? = nil,
                            notice: (String) -> Void = { _ in },
                            progress: (ModelLoader.Progress) -> Void = { _ in }) throws(ModelError) -> GemmaModel {
        let file: ModelFile
        do {
            // An estimate that cannot be made (an unsupported configuration) is reported by the load.
            file = try ModelLoader.open(path: path, unpack: unpack, headerCheck: { file, mode in
                memoryCheck.flatMap { check in
                    (try? MemoryFit(file: file, session: check.session, unpack: mode, root: check.root))?.warning
                }
            }, notice: notice, progress: progress)
        } catch {
            if case .unsupportedArchitecture(let name) = error { throw .unsupportedArchitecture(name) }
            throw .file(error)
        }
        return try GemmaModel(file: file)
    }

    static let tanhGELUNames: Set<String> = ["gelu_pytorch_tanh", "gelu_tanh", "gelu_new", "gelu"]

    public var vocabularySize: Int { config.vocabSize }

    /// Parameter count (the tied embedding counted once).
    public var parameterCount: Int {
        var n = embedding.rows * embedding.cols + finalNorm.scale.count
        for l in layers {
            n += [l.qProj, l.kProj, l.vProj, l.oProj, l.gateProj, l.upProj, l.downProj].reduce(0) { $0 + $1.rows * $1.cols }
            n += l.norms.reduce(0) { $0 + $1.scale.count }
        }
        return n
    }

    /// Bytes of weights the forward pass reads per token (all layers + the LM head).
    public var weightBytes: Int {
        var n = embedding.byteCount
        for l in layers {
            n += [l.qProj, l.kProj, l.vProj, l.oProj, l.gateProj, l.upProj, l.downProj].reduce(0) { $0 + $1.byteCount }
        }
        return n
    }
}
