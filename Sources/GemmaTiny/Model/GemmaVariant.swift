/// What the forward pass needs to know about a model beyond its shapes, resolved once from the
/// configuration: the per-layer attention (sliding window or global, RoPE base), the attention
/// scale, soft-capping and query/key norms. Gemma 1 is the variant with every layer global, one
/// RoPE base and nothing optional.
///
/// Follows transformers' Gemma2/Gemma3 modelling code:
/// - attention scores = (q . k) * scale, scale = query_pre_attn_scalar^-0.5 (head_dim^-0.5 for
///   Gemma 1), then, with attention soft-capping, cap * tanh(scores / cap), then the mask;
/// - a sliding layer's query at position q sees keys at positions q - window < k <= q;
/// - Gemma 3's sliding layers rotate with `rope_local_base_freq`, its global ones with
///   `rope_theta`;
/// - with final soft-capping, the LM head's logits become cap * tanh(logits / cap).
public struct GemmaVariant: Sendable, Equatable {
    /// One layer's attention.
    public struct LayerAttention: Sendable, Equatable {
        /// Keys a query sees, itself included (nil: every earlier position).
        public var window: Int?
        /// Index into `ropeThetas` of the RoPE base this layer rotates with.
        public var ropeIndex: Int

        public var isSliding: Bool { window != nil }
    }

    public let architecture: ModelArchitecture
    public let layers: [LayerAttention]
    /// The distinct RoPE bases, in order of first use by a layer.
    public let ropeThetas: [Double]
    /// The factor attention scores are multiplied by (f32, as transformers applies it).
    public let attentionScale: Float
    /// Attention logit soft-capping (Gemma 2), applied after the scale and before the mask.
    public let attentionSoftcap: Float?
    /// Soft-capping of the LM head's logits (Gemma 2).
    public let finalSoftcap: Float?
    /// RMSNorm of each head's query and key, after the projections and before RoPE (Gemma 3).
    public var hasQKNorm: Bool { architecture.hasQKNorm }
    /// Norms on the attention and MLP outputs (Gemma 2 and 3).
    public var hasPostNorms: Bool { architecture.hasPostNorms }

    public init(config: ModelConfig) throws(ModelError) {
        let architecture = config.architecture
        self.architecture = architecture
        switch architecture {
        case .gemma:
            // Gemma 1 files carry none of the newer keys; refuse one that would mean something
            // this architecture does not do.
            if config.layerTypes?.contains(ModelConfig.slidingAttention) == true || config.attnLogitSoftcapping != nil
                || config.finalLogitSoftcapping != nil || config.useQKNorm == true {
                throw .unsupportedConfiguration("a \"gemma\" (Gemma 1) model with Gemma 2/3 attention settings")
            }
        case .gemma2, .gemma3:
            // The converter writes these for every Gemma 2/3 file (docs/FORMAT.md).
            guard config.layerTypes != nil else {
                throw .unsupportedConfiguration("\(architecture.rawValue) model without layer_types")
            }
            guard config.queryPreAttnScalar != nil else {
                throw .unsupportedConfiguration("\(architecture.rawValue) model without query_pre_attn_scalar")
            }
            // The query/key norms come with the architecture (ModelSchema): a Gemma 3 file
            // says so, a Gemma 2 file must not.
            if architecture.hasQKNorm, config.useQKNorm != true {
                throw .unsupportedConfiguration("\(architecture.rawValue) model without use_qk_norm")
            }
            if !architecture.hasQKNorm, config.useQKNorm == true {
                throw .unsupportedConfiguration("\(architecture.rawValue) model with use_qk_norm (Gemma 3's query/key norms)")
            }
        }
        var thetas: [Double] = []
        var layers: [LayerAttention] = []
        for i in 0..<config.numHiddenLayers {
            let theta = config.ropeTheta(layer: i)
            let index: Int
            if let k = thetas.firstIndex(of: theta) {
                index = k
            } else {
                index = thetas.count
                thetas.append(theta)
            }
            layers.append(LayerAttention(window: config.isSlidingLayer(i) ? config.slidingWindow : nil, ropeIndex: index))
        }
        self.layers = layers
        ropeThetas = thetas.isEmpty ? [config.ropeTheta] : thetas
        attentionScale = config.attentionScale
        attentionSoftcap = config.attnLogitSoftcapping.map { Float($0) }
        finalSoftcap = config.finalLogitSoftcapping.map { Float($0) }
    }

    /// Positions layer `layer`'s KV cache must hold for a context of `contextLength` tokens:
    /// the window for a sliding layer (a ring buffer), else the whole context.
    public func cacheCapacity(layer: Int, contextLength: Int) -> Int {
        if let w = layers[layer].window { return min(w, contextLength) }
        return contextLength
    }

    /// True when some layer keeps only a window of positions.
    public var hasSlidingLayers: Bool { layers.contains { $0.isSliding } }
}
