/// The model configuration the runtime needs, normalised by the converter from whatever
/// config.json variant the checkpoint came with. Stored as JSON in the model file's metadata;
/// keys follow Hugging Face's config.json names.
public struct ModelConfig: Codable, Sendable, Equatable {
    /// "gemma" (Gemma 1); "gemma2" and "gemma3" are reserved for later architectures.
    public var architecture: String
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
    }

    public init(architecture: String, vocabSize: Int, hiddenSize: Int, intermediateSize: Int,
                numHiddenLayers: Int, numAttentionHeads: Int, numKeyValueHeads: Int, headDim: Int,
                maxPositionEmbeddings: Int, rmsNormEps: Double, ropeTheta: Double,
                hiddenActivation: String, embeddingScale: Float) {
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
    }

    /// Checks the numbers are usable before anything allocates with them.
    public func validate() throws(ModelFileError) {
        func bad(_ why: String) -> ModelFileError { .invalidMetadata("config: \(why)") }
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
    }
}
