/// Every tensor a Gemma model file holds: the one list the runtime's loader (`GemmaModel`), the
/// converter's tensor plan and its GGUF importer all read, so that a tensor is named, shaped and
/// assigned to architectures in one place (`layer`, below, is the table).
///
/// A model file holds, in this order: the embedding, then for each layer N the tensors of
/// `layer` that its architecture has (named `model.layers.N.` + `name`), then the final norm.
/// Names are Hugging Face's; `ggufName` is llama.cpp's for the same tensor (gguf-py's tensor map).
/// Gemma 1's `post_attention_layernorm` is the norm before the MLP (the role Gemma 2 and 3 give
/// `pre_feedforward_layernorm`, their `post_attention_layernorm` being on the attention output):
/// one name, two roles, hence two entries.
public enum ModelSchema {
    /// What a tensor is for in the forward pass (`LayerWeights` has a field per layer role).
    public enum Role: String, Sendable, CaseIterable {
        /// `model.embed_tokens`: the input embedding and the tied LM head.
        case embedding
        /// `model.norm`: after the last layer.
        case finalNorm
        /// Before attention.
        case inputNorm
        case qProj, kProj, vProj
        /// Each head's query / key, after the projections and before RoPE.
        case qNorm, kNorm
        case oProj
        /// On the attention output, before the residual add.
        case postAttentionNorm
        /// Before the MLP.
        case preFeedforwardNorm
        case gateProj, upProj, downProj
        /// On the MLP output, before the residual add.
        case postFeedforwardNorm
    }

    /// A dimension of a tensor's shape, sized by the configuration.
    public enum Dimension: Sendable, Hashable {
        case vocabulary
        case hidden
        case intermediate
        /// num_attention_heads × head_dim.
        case queryWidth
        /// num_key_value_heads × head_dim.
        case keyValueWidth
        case headDim

        public func size(in c: ModelConfig) -> Int {
            switch self {
            case .vocabulary: return c.vocabSize
            case .hidden: return c.hiddenSize
            case .intermediate: return c.intermediateSize
            case .queryWidth: return c.numAttentionHeads * c.headDim
            case .keyValueWidth: return c.numKeyValueHeads * c.headDim
            case .headDim: return c.headDim
            }
        }
    }

    /// One kind of tensor: the embedding, the final norm, or one of a layer's tensors.
    public struct TensorKind: Sendable, Hashable {
        public let role: Role
        /// Hugging Face's name; for a layer's tensor the part after `model.layers.N.`.
        public let name: String
        /// llama.cpp's name; for a layer's tensor the part after `blk.N.`.
        public let ggufName: String
        /// Row-major, outermost first (as PyTorch lists it).
        public let shape: [Dimension]
        /// The architectures whose models have this tensor.
        public let architectures: Set<ModelArchitecture>

        init(_ role: Role, _ name: String, gguf: String, _ shape: [Dimension],
             _ architectures: Set<ModelArchitecture> = Set(ModelArchitecture.allCases)) {
            self.role = role
            self.name = name
            self.ggufName = gguf
            self.shape = shape
            self.architectures = architectures
        }

        /// A norm's weight vector (stored as f32, applied as `1 + w`); every other tensor is a matrix.
        public var isNorm: Bool { shape.count == 1 }

        public func shape(in config: ModelConfig) -> [Int] { shape.map { $0.size(in: config) } }
    }

    /// One tensor of a particular model: its kind, its layer (nil for the embedding and the
    /// final norm), its full name and its shape.
    public struct Tensor: Sendable, Equatable {
        public let kind: TensorKind
        public let layer: Int?
        public let name: String
        public let shape: [Int]
    }

    // ---- the model's own tensors ----

    public static let embedding = TensorKind(.embedding, "model.embed_tokens.weight", gguf: "token_embd.weight", [.vocabulary, .hidden])
    public static let finalNorm = TensorKind(.finalNorm, "model.norm.weight", gguf: "output_norm.weight", [.hidden])

    // ---- each layer's tensors ----

    public static let inputNorm = TensorKind(.inputNorm, "input_layernorm.weight", gguf: "attn_norm.weight", [.hidden])
    public static let qProj = TensorKind(.qProj, "self_attn.q_proj.weight", gguf: "attn_q.weight", [.queryWidth, .hidden])
    public static let kProj = TensorKind(.kProj, "self_attn.k_proj.weight", gguf: "attn_k.weight", [.keyValueWidth, .hidden])
    public static let vProj = TensorKind(.vProj, "self_attn.v_proj.weight", gguf: "attn_v.weight", [.keyValueWidth, .hidden])
    public static let qNorm = TensorKind(.qNorm, "self_attn.q_norm.weight", gguf: "attn_q_norm.weight", [.headDim], [.gemma3])
    public static let kNorm = TensorKind(.kNorm, "self_attn.k_norm.weight", gguf: "attn_k_norm.weight", [.headDim], [.gemma3])
    public static let oProj = TensorKind(.oProj, "self_attn.o_proj.weight", gguf: "attn_output.weight", [.hidden, .queryWidth])
    public static let postAttentionNorm = TensorKind(.postAttentionNorm, "post_attention_layernorm.weight",
                                                     gguf: "post_attention_norm.weight", [.hidden], [.gemma2, .gemma3])
    /// Gemma 1's norm before the MLP, under the name Gemma 2 and 3 give their post-attention norm.
    public static let gemma1PreFeedforwardNorm = TensorKind(.preFeedforwardNorm, "post_attention_layernorm.weight",
                                                            gguf: "ffn_norm.weight", [.hidden], [.gemma])
    public static let preFeedforwardNorm = TensorKind(.preFeedforwardNorm, "pre_feedforward_layernorm.weight",
                                                      gguf: "ffn_norm.weight", [.hidden], [.gemma2, .gemma3])
    public static let gateProj = TensorKind(.gateProj, "mlp.gate_proj.weight", gguf: "ffn_gate.weight", [.intermediate, .hidden])
    public static let upProj = TensorKind(.upProj, "mlp.up_proj.weight", gguf: "ffn_up.weight", [.intermediate, .hidden])
    public static let downProj = TensorKind(.downProj, "mlp.down_proj.weight", gguf: "ffn_down.weight", [.hidden, .intermediate])
    public static let postFeedforwardNorm = TensorKind(.postFeedforwardNorm, "post_feedforward_layernorm.weight",
                                                       gguf: "post_ffw_norm.weight", [.hidden], [.gemma2, .gemma3])

    /// Every kind of layer tensor, in the order a model file holds them (the forward pass's order).
    public static let layer: [TensorKind] = [
        inputNorm, qProj, kProj, vProj, qNorm, kNorm, oProj,
        postAttentionNorm, gemma1PreFeedforwardNorm, preFeedforwardNorm,
        gateProj, upProj, downProj, postFeedforwardNorm,
    ]

    /// The layer tensors of `architecture`'s models, in file order.
    public static func layerTensors(of architecture: ModelArchitecture) -> [TensorKind] {
        layer.filter { $0.architectures.contains(architecture) }
    }

    /// `model.layers.N.`
    public static func layerPrefix(_ layer: Int) -> String { "model.layers.\(layer)." }

    /// The tensors of layer `layer`, in file order.
    public static func layerTensors(_ layer: Int, config: ModelConfig) -> [Tensor] {
        let prefix = layerPrefix(layer)
        return layerTensors(of: config.architecture).map {
            Tensor(kind: $0, layer: layer, name: prefix + $0.name, shape: $0.shape(in: config))
        }
    }

    /// Every tensor of a model with this configuration, in file order: the embedding, each
    /// layer's, the final norm.
    public static func tensors(config: ModelConfig) -> [Tensor] {
        var list = [Tensor(kind: embedding, layer: nil, name: embedding.name, shape: embedding.shape(in: config))]
        for i in 0..<config.numHiddenLayers { list += layerTensors(i, config: config) }
        list.append(Tensor(kind: finalNorm, layer: nil, name: finalNorm.name, shape: finalNorm.shape(in: config)))
        return list
    }

    /// The kind of tensor a GGUF file names `ggufName` in a model of `architecture`, and its
    /// layer (nil for the embedding and the final norm); nil for a name not in the schema.
    /// Layer numbers are written without leading zeros (`blk.3.`, never `blk.03.`).
    public static func kind(ggufName: String, architecture: ModelArchitecture) -> (kind: TensorKind, layer: Int?)? {
        for kind in [embedding, finalNorm] where kind.ggufName == ggufName { return (kind, nil) }
        let parts = ggufName.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 3, parts[0] == "blk", let layer = Int(parts[1]), layer >= 0, String(layer) == parts[1] else {
            return nil
        }
        let rest = parts[2...].joined(separator: ".")
        guard let kind = layerTensors(of: architecture).first(where: { $0.ggufName == rest }) else { return nil }
        return (kind, layer)
    }
}
