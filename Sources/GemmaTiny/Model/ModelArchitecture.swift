/// The model families the runtime knows, from `ModelConfig.architecture`.
///
/// Only Gemma 1 runs today. Gemma 2 (post-norms, soft-capping, sliding windows) and Gemma 3
/// (q/k norms, per-layer RoPE theta, 5:1 local/global) will add cases here, per-layer fields to
/// `LayerWeights` and branches in `InferenceSession.runLayer`.
public enum ModelArchitecture: String, Sendable, CaseIterable {
    case gemma

    public init(config: ModelConfig) throws(ModelError) {
        guard let a = ModelArchitecture(rawValue: config.architecture) else {
            throw .unsupportedArchitecture(config.architecture)
        }
        self = a
    }
}
