/// The model families the runtime knows, from `ModelConfig.architecture`, and the structural
/// differences between them. Everything that varies per model or per layer beyond the
/// structure (window, RoPE base, scale, caps) is in `GemmaVariant`.
///
/// | | Gemma 1 | Gemma 2 | Gemma 3 (text) |
/// |---|---|---|---|
/// | norms per layer | before attention, before MLP | before and after attention and MLP | as Gemma 2 |
/// | query/key norms | no | no | RMSNorm per head, before RoPE |
/// | attention | global | sliding / global alternating | 5 sliding : 1 global (`layer_types`) |
/// | soft-capping | no | attention logits and final logits | no |
public enum ModelArchitecture: String, Sendable, CaseIterable {
    /// GemmaForCausalLM.
    case gemma
    /// Gemma2ForCausalLM.
    case gemma2
    /// Gemma3ForCausalLM (text only).
    case gemma3

    public init(config: ModelConfig) throws(ModelError) {
        guard let a = ModelArchitecture(rawValue: config.architecture) else {
            throw .unsupportedArchitecture(config.architecture)
        }
        self = a
    }

    /// Norms on the attention output and the MLP output (`post_attention_layernorm`,
    /// `post_feedforward_layernorm`) as well as before each block (`input_layernorm`,
    /// `pre_feedforward_layernorm`). In Gemma 1, `post_attention_layernorm` is the norm before
    /// the MLP.
    public var hasPostNorms: Bool { self != .gemma }

    /// The tensor name of the norm applied before the MLP.
    public var preFeedforwardNormName: String {
        self == .gemma ? "post_attention_layernorm.weight" : "pre_feedforward_layernorm.weight"
    }
}
