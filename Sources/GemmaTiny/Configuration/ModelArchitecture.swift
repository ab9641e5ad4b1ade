/// The model families the runtime knows (`ModelConfig.architecture`), and the structural
/// differences between them. Which tensors each has is in `ModelSchema`; everything that varies
/// per model or per layer beyond the structure (window, RoPE base, scale, caps) is in
/// `GemmaVariant`.
///
/// | | Gemma 1 | Gemma 2 | Gemma 3 (text) |
/// |---|---|---|---|
/// | norms per layer | before attention, before MLP | before and after attention and MLP | as Gemma 2 |
/// | query/key norms | no | no | RMSNorm per head, before RoPE |
/// | attention | global | sliding / global alternating | 5 sliding : 1 global (`layer_types`) |
/// | soft-capping | no | attention logits and final logits | no |
///
/// The raw value is the name the model file's metadata writes, which is also llama.cpp's
/// `general.architecture` for the same models.
public enum ModelArchitecture: String, Sendable, CaseIterable, Codable {
    /// GemmaForCausalLM.
    case gemma
    /// Gemma2ForCausalLM.
    case gemma2
    /// Gemma3ForCausalLM (text only).
    case gemma3

    /// Norms on the attention output and the MLP output (`post_attention_layernorm`,
    /// `post_feedforward_layernorm`) as well as before each block (`input_layernorm`,
    /// `pre_feedforward_layernorm`). In Gemma 1, `post_attention_layernorm` is the norm before
    /// the MLP.
    public var hasPostNorms: Bool { ModelSchema.postFeedforwardNorm.architectures.contains(self) }

    /// Per-head query and key norms (`self_attn.q_norm`, `self_attn.k_norm`).
    public var hasQKNorm: Bool { ModelSchema.qNorm.architectures.contains(self) }

    /// An architecture name this build does not run, e.g. from a newer model file.
    public static func unsupportedMessage(_ name: String) -> String {
        let names = allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
        return "unsupported architecture \"\(name)\": this build runs Gemma 1, 2 and 3 text models (\(names))"
    }

    /// Decodes the name, refusing one this build does not know with
    /// `ConfigurationError.unsupportedArchitecture` (which the model file reports as it is).
    public init(from decoder: any Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        guard let architecture = ModelArchitecture(rawValue: name) else { throw ConfigurationError.unsupportedArchitecture(name) }
        self = architecture
    }
}
