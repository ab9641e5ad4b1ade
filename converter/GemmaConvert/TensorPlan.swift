import GemmaTiny

/// Which tensors a model file holds, their shapes (from the config) and storage types, under
/// Hugging Face's names. Gemma 2 and 3 add per-layer norms after attention and around the MLP
/// (`post_attention_layernorm` is the norm of the attention output there, not the pre-MLP norm
/// it is in Gemma 1); Gemma 3 adds per-head query/key norms of shape [head_dim].
struct TensorPlan {
    struct Entry {
        let name: String
        let shape: [Int]
        let type: StorageType
        /// Why the type differs from the one asked for, if it does.
        let note: String?
    }

    static let embeddingName = "model.embed_tokens.weight"
    /// Present in some checkpoints but not needed: the LM head is tied, RoPE is computed.
    static func isIgnorable(_ name: String) -> Bool {
        name == "lm_head.weight" || name.hasSuffix("rotary_emb.inv_freq")
    }

    let entries: [Entry]

    /// `sourceType`: for a weight matrix, a type that replaces the policy's
    /// (`ConversionOptions.typeForQuantizedSource`), or nil to keep it.
    init(config c: ModelConfig, options: ConversionOptions, sourceType: (String) -> StorageType? = { _ in nil }) {
        var list: [(String, [Int])] = [(Self.embeddingName, [c.vocabSize, c.hiddenSize])]
        let q = c.numAttentionHeads * c.headDim, kv = c.numKeyValueHeads * c.headDim
        let isGemma1 = c.architecture == .gemma
        let qkNorm = c.useQKNorm == true
        for i in 0..<c.numHiddenLayers where !isGemma1 {
            let p = "model.layers.\(i)."
            list += [
                (p + "input_layernorm.weight", [c.hiddenSize]),
                (p + "self_attn.q_proj.weight", [q, c.hiddenSize]),
                (p + "self_attn.k_proj.weight", [kv, c.hiddenSize]),
                (p + "self_attn.v_proj.weight", [kv, c.hiddenSize]),
            ]
            if qkNorm {
                list += [(p + "self_attn.q_norm.weight", [c.headDim]), (p + "self_attn.k_norm.weight", [c.headDim])]
            }
            list += [
                (p + "self_attn.o_proj.weight", [c.hiddenSize, q]),
                (p + "post_attention_layernorm.weight", [c.hiddenSize]),
                (p + "pre_feedforward_layernorm.weight", [c.hiddenSize]),
                (p + "mlp.gate_proj.weight", [c.intermediateSize, c.hiddenSize]),
                (p + "mlp.up_proj.weight", [c.intermediateSize, c.hiddenSize]),
                (p + "mlp.down_proj.weight", [c.hiddenSize, c.intermediateSize]),
                (p + "post_feedforward_layernorm.weight", [c.hiddenSize]),
            ]
        }
        for i in 0..<c.numHiddenLayers where isGemma1 {
            let p = "model.layers.\(i)."
            list += [
                (p + "input_layernorm.weight", [c.hiddenSize]),
                (p + "self_attn.q_proj.weight", [q, c.hiddenSize]),
                (p + "self_attn.k_proj.weight", [kv, c.hiddenSize]),
                (p + "self_attn.v_proj.weight", [kv, c.hiddenSize]),
                (p + "self_attn.o_proj.weight", [c.hiddenSize, q]),
                (p + "post_attention_layernorm.weight", [c.hiddenSize]),
                (p + "mlp.gate_proj.weight", [c.intermediateSize, c.hiddenSize]),
                (p + "mlp.up_proj.weight", [c.intermediateSize, c.hiddenSize]),
                (p + "mlp.down_proj.weight", [c.hiddenSize, c.intermediateSize]),
            ]
        }
        list.append(("model.norm.weight", [c.hiddenSize]))
        entries = list.map { name, shape in
            // Norm weights are tiny and precision-sensitive: always f32.
            if shape.count == 1 { return Entry(name: name, shape: shape, type: .f32, note: nil) }
            let wanted = sourceType(name) ?? Self.policyType(name: name, options: options, layers: c.numHiddenLayers)
            return Self.fitted(name: name, shape: shape, wanted: wanted)
        }
    }

    /// `wanted`, or what stands in for it when the row length is not whole blocks of it:
    /// llama.cpp's fallbacks for the K types (q4k -> q5, q6k -> q8), then bf16.
    static func fitted(name: String, shape: [Int], wanted: StorageType) -> Entry {
        let row = shape.last!
        var type = wanted
        while type.isQuantized, row % type.blockSize != 0 {
            guard let next = Policy.fallback[type] else {
                return Entry(name: name, shape: shape, type: .bf16,
                             note: "row length \(row) is not a multiple of \(type.blockSize): stored as bf16 instead of \(wanted)")
            }
            type = next
        }
        guard type != wanted else { return Entry(name: name, shape: shape, type: type, note: nil) }
        return Entry(name: name, shape: shape, type: type,
                     note: "row length \(row) is not a multiple of \(wanted.blockSize): stored as \(type) instead of \(wanted)")
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
        static let moreBitsMatrices = ["self_attn.v_proj.weight", "mlp.down_proj.weight"]

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
