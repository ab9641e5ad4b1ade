import GemmaTiny

/// The tensors of a model file (`ModelSchema`: names, shapes from the config, file order) with
/// the storage type each gets.
struct TensorPlan {
    struct Entry {
        let name: String
        let shape: [Int]
        let type: StorageType
        /// Why the type differs from the one asked for, if it does.
        let note: String?
        let kind: ModelSchema.TensorKind
    }

    static let embeddingName = ModelSchema.embedding.name
    /// Present in some checkpoints but not needed: the LM head is tied, RoPE is computed.
    static func isIgnorable(_ name: String) -> Bool {
        name == "lm_head.weight" || name.hasSuffix("rotary_emb.inv_freq")
    }

    let entries: [Entry]

    /// `sourceType`: for a weight matrix, a type that replaces the policy's
    /// (`ConversionOptions.typeForQuantizedSource`), or nil to keep it.
    init(config c: ModelConfig, options: ConversionOptions, sourceType: (String) -> StorageType? = { _ in nil }) {
        entries = ModelSchema.tensors(config: c).map { t in
            // Norm weights are tiny and precision-sensitive: always f32.
            if t.kind.isNorm { return Entry(name: t.name, shape: t.shape, type: .f32, note: nil, kind: t.kind) }
            let wanted = sourceType(t.name) ?? Self.policyType(name: t.name, options: options, layers: c.numHiddenLayers)
            return Self.fitted(name: t.name, shape: t.shape, wanted: wanted, kind: t.kind)
        }
    }

    /// `wanted`, or what stands in for it when the row length is not whole blocks of it:
    /// llama.cpp's fallbacks for the K types (q4k -> q5, q6k -> q8), then bf16.
    static func fitted(name: String, shape: [Int], wanted: StorageType, kind: ModelSchema.TensorKind) -> Entry {
        let row = shape.last!
        var type = wanted
        while type.isQuantized, row % type.blockSize != 0 {
            guard let next = Policy.fallback[type] else {
                return Entry(name: name, shape: shape, type: .bf16,
                             note: "row length \(row) is not a multiple of \(type.blockSize): stored as bf16 instead of \(wanted)", kind: kind)
            }
            type = next
        }
        guard type != wanted else { return Entry(name: name, shape: shape, type: type, note: nil, kind: kind) }
        return Entry(name: name, shape: shape, type: type,
                     note: "row length \(row) is not a multiple of \(wanted.blockSize): stored as \(type) instead of \(wanted)", kind: kind)
    }

    /// The type the policy of `options` asks for (before fallbacks) for the matrix `name`.
    static func policyType(name: String, options: ConversionOptions, layers: Int) -> StorageType {
        if name == embeddingName { return options.resolvedEmbeddingType }
        if options.type == .q4k, !options.pure {
            return Policy.kQuantMix(name: name, layers: layers)
        }
        let sensitive = ConversionOptions.sensitiveMatrices.contains { name.hasSuffix($0) }
        return sensitive ? options.resolvedSensitiveType : options.type
    }
}

extension TensorPlan {
    /// The default policy (`--type q4k` without `--pure`), a dense model's llama.cpp Q4_K_M
    /// (llama_tensor_get_type in llama-quant.cpp):
    ///
    /// | tensor                                              | type | if the row is not whole 256-blocks |
    /// |-----------------------------------------------------|------|------------------------------------|
    /// | tied embedding / LM head                            | q6k  | q8                                 |
    /// | `v_proj`, `down_proj` of layers that use more bits  | q6k  | q8                                 |
    /// | every other matrix                                  | q4k  | q5                                 |
    /// | norms                                               | f32  |                                    |
    ///
    /// A layer i of n uses more bits when i < n/8, i >= 7n/8 or (i - n/8) % 3 == 2 (integer
    /// division): the first and last eighth of the layers and every third one between.
    enum Policy {
        /// Matrices that get q6k in the layers that use more bits.
        static let moreBitsMatrices = [ModelSchema.vProj.name, ModelSchema.downProj.name]

        /// llama.cpp's tensor_type_fallback: a 256-block type whose row length is not whole
        /// super-blocks becomes a 32-block type of at least as many bits.
        static let fallback: [StorageType: StorageType] = [.q4k: .q5, .q6k: .q8]

        /// llama.cpp's use_more_bits.
        static func usesMoreBits(layer i: Int, of n: Int) -> Bool {
            i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
        }

        static func kQuantMix(name: String, layers: Int) -> StorageType {
            if name == TensorPlan.embeddingName { return .q6k }
            if let layer = layerIndex(name), moreBitsMatrices.contains(where: { name.hasSuffix($0) }),
               usesMoreBits(layer: layer, of: layers) {
                return .q6k
            }
            return .q4k
        }

        /// N of `model.layers.N.…`.
        static func layerIndex(_ name: String) -> Int? {
            let parts = name.split(separator: ".")
            guard parts.count > 2, parts[0] == "model", parts[1] == "layers" else { return nil }
            return Int(parts[2])
        }
    }
}
