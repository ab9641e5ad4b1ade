/// The model configuration the runtime needs, normalised by the converter from whatever
/// config.json variant (or GGUF metadata) the checkpoint came with. Stored as JSON in the model
/// file's metadata; keys follow Hugging Face's config.json names.
///
/// Gemma 2 and 3 add optional fields (absent, i.e. nil, in Gemma 1 files). The converter writes
/// every one of them explicitly for those architectures, with transformers' defaults filled in,
/// so the runtime never needs to know a default: see the helpers at the bottom
/// (`attentionScale`, `isSlidingLayer`, `ropeTheta(layer:)`).
public struct ModelConfig: Codable, Sendable, Equatable {
    /// Gemma 1, 2 or 3 (text only); written by its raw value. A file naming another one does
    /// not open (`ConfigurationError.unsupportedArchitecture`).
    public var architecture: ModelArchitecture
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    public var headDim: Int
    public var maxPositionEmbeddings: Int
    public var rmsNormEps: Double
    public var ropeTheta: Double
    /// Always the tanh-approximate GELU for Gemma ("gelu_pytorch_tanh").
    public var hiddenActivation: String
    /// sqrt(hidden_size) rounded to the checkpoint's dtype, as the reference computes it in
    /// its activation dtype (bf16: sqrt(2048) = 45.2548 becomes 45.25).
    public var embeddingScale: Float

    // ---- Gemma 2 / Gemma 3 (nil for Gemma 1) ----

    /// Attention window of "sliding_attention" layers, in tokens: a query at position q attends
    /// to keys at positions k with q - window < k <= q (the window includes the query itself;
    /// transformers' `sliding_window_overlay`).
    public var slidingWindow: Int?
    /// One entry per layer, "sliding_attention" or "full_attention". Always written for Gemma 2
    /// (alternating, layer 0 sliding) and Gemma 3 (5 sliding : 1 full for the released models).
    public var layerTypes: [String]?
    /// Attention logits are soft-capped before the mask and softmax: cap * tanh(logits / cap)
    /// (Gemma 2: 50). nil = no capping (Gemma 3).
    public var attnLogitSoftcapping: Double?
    /// Final (LM head) logits are soft-capped: cap * tanh(logits / cap) (Gemma 2: 30).
    /// nil = no capping (Gemma 3).
    public var finalLogitSoftcapping: Double?
    /// Attention scores are multiplied by query_pre_attn_scalar^-0.5 instead of head_dim^-0.5.
    public var queryPreAttnScalar: Double?
    /// RoPE theta of "sliding_attention" layers (Gemma 3: 10000; `rope_theta` is then the one of
    /// "full_attention" layers, 1000000). nil: every layer uses `rope_theta` (Gemma 1 and 2).
    public var ropeLocalBaseFreq: Double?
    /// Queries and keys are RMS-normalised per head (weights self_attn.q_norm / k_norm, shape
    /// [head_dim], applied as x / rms(x) * (1 + w) like every Gemma norm) after the projections
    /// and before RoPE (Gemma 3).
    public var useQKNorm: Bool?

    enum CodingKeys: String, CodingKey {
        case architecture
        case vocabSize = "vocab_size"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads"
        case headDim = "head_dim"
        case maxPositionEmbeddings = "max_position_embeddings"
        case rmsNormEps = "rms_norm_eps"
        case ropeTheta = "rope_theta"
        case hiddenActivation = "hidden_activation"
        case embeddingScale = "embedding_scale"
        case slidingWindow = "sliding_window"
        case layerTypes = "layer_types"
        case attnLogitSoftcapping = "attn_logit_softcapping"
        case finalLogitSoftcapping = "final_logit_softcapping"
        case queryPreAttnScalar = "query_pre_attn_scalar"
        case ropeLocalBaseFreq = "rope_local_base_freq"
        case useQKNorm = "use_qk_norm"
    }

    public static let slidingAttention = "sliding_attention"
    public static let fullAttention = "full_attention"

    public init(architecture: ModelArchitecture, vocabSize: Int, hiddenSize: Int, intermediateSize: Int,
                numHiddenLayers: Int, numAttentionHeads: Int, numKeyValueHeads: Int, headDim: Int,
                maxPositionEmbeddings: Int, rmsNormEps: Double, ropeTheta: Double,
                hiddenActivation: String, embeddingScale: Float,
                slidingWindow: Int? = nil, layerTypes: [String]? = nil, attnLogitSoftcapping: Double? = nil,
                finalLogitSoftcapping: Double? = nil, queryPreAttnScalar: Double? = nil,
                ropeLocalBaseFreq: Double? = nil, useQKNorm: Bool? = nil) {
        self.architecture = architecture
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads
        self.headDim = headDim
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.hiddenActivation = hiddenActivation
        self.embeddingScale = embeddingScale
        self.slidingWindow = slidingWindow
        self.layerTypes = layerTypes
        self.attnLogitSoftcapping = attnLogitSoftcapping
        self.finalLogitSoftcapping = finalLogitSoftcapping
        self.queryPreAttnScalar = queryPreAttnScalar
        self.ropeLocalBaseFreq = ropeLocalBaseFreq
        self.useQKNorm = useQKNorm
    }

    /// Checks the numbers are usable before anything allocates with them.
    public func validate() throws(ConfigurationError) {
        func bad(_ why: String) -> ConfigurationError { .invalid(why) }
        let limit = 1 << 20
        for (name, v) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize),
                          ("intermediate_size", intermediateSize), ("num_hidden_layers", numHiddenLayers),
                          ("num_attention_heads", numAttentionHeads), ("num_key_value_heads", numKeyValueHeads),
                          ("head_dim", headDim), ("max_position_embeddings", maxPositionEmbeddings)] {
            guard v > 0, v <= (name == "vocab_size" || name == "max_position_embeddings" ? 1 << 24 : limit) else {
                throw bad("\(name) = \(v) is out of range")
            }
        }
        guard numAttentionHeads % numKeyValueHeads == 0 else {
            throw bad("num_attention_heads (\(numAttentionHeads)) is not a multiple of num_key_value_heads (\(numKeyValueHeads))")
        }
        guard headDim % 2 == 0 else { throw bad("head_dim \(headDim) is odd; RoPE needs pairs") }
        guard rmsNormEps.isFinite, rmsNormEps >= 0, ropeTheta.isFinite, ropeTheta > 0,
              embeddingScale.isFinite, embeddingScale > 0 else {
            throw bad("rms_norm_eps, rope_theta or embedding_scale is not a positive finite number")
        }
        if let layerTypes {
            guard layerTypes.count == numHiddenLayers else {
                throw bad("layer_types has \(layerTypes.count) entries for \(numHiddenLayers) layers")
            }
            if let odd = layerTypes.first(where: { $0 != Self.slidingAttention && $0 != Self.fullAttention }) {
                throw bad("layer_types entry \(odd.debugDescription) is neither sliding_attention nor full_attention")
            }
            if layerTypes.contains(Self.slidingAttention), slidingWindow == nil {
                throw bad("layer_types has sliding_attention layers but sliding_window is missing")
            }
        }
        if let slidingWindow, slidingWindow <= 0 || slidingWindow > 1 << 24 {
            throw bad("sliding_window = \(slidingWindow) is out of range")
        }
        for (name, value) in [("attn_logit_softcapping", attnLogitSoftcapping), ("final_logit_softcapping", finalLogitSoftcapping),
                              ("query_pre_attn_scalar", queryPreAttnScalar), ("rope_local_base_freq", ropeLocalBaseFreq)] {
            if let value, !(value.isFinite && value > 0) { throw bad("\(name) = \(value) is not a positive finite number") }
        }
    }
}

extension ModelConfig {
    /// The factor attention scores are multiplied by, as transformers computes it (a Python
    /// float, applied to f32 scores): query_pre_attn_scalar^-0.5 (Gemma 2/3), else head_dim^-0.5.
    public var attentionScale: Float {
        Float(1.0 / (queryPreAttnScalar ?? Double(headDim)).squareRoot())
    }

    /// True for a "sliding_attention" layer (false for every layer of Gemma 1).
    public func isSlidingLayer(_ layer: Int) -> Bool {
        guard let layerTypes, layer >= 0, layer < layerTypes.count else { return false }
        return layerTypes[layer] == Self.slidingAttention
    }

    /// RoPE theta of a layer: rope_local_base_freq for sliding layers when set (Gemma 3), else
    /// rope_theta.
    public func ropeTheta(layer: Int) -> Double {
        if isSlidingLayer(layer), let ropeLocalBaseFreq { return ropeLocalBaseFreq }
        return ropeTheta
    }
}
