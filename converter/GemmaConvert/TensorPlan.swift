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

    /// `sensitiveType`: the type of the matrices in `ConversionOptions.sensitiveMatrices`.
    /// `sourceType`: for a weight matrix other than the embedding, a type that replaces the
    /// policy's (`ConversionOptions.typeForQuantizedSource`), or nil to keep it.
    init(config c: ModelConfig, type: StorageType, embeddingType: StorageType, sensitiveType: StorageType? = nil,
         sourceType: (String) -> StorageType? = { _ in nil }) {
        var list: [(String, [Int])] = [(Self.embeddingName, [c.vocabSize, c.hiddenSize])]
        let q = c.numAttentionHeads * c.headDim, kv = c.numKeyValueHeads * c.headDim
        let isGemma1 = c.architecture == "gemma"
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
            let sensitive = ConversionOptions.sensitiveMatrices.contains { name.hasSuffix($0) }
            let wanted = name == Self.embeddingName ? embeddingType : sourceType(name) ?? (sensitive ? sensitiveType ?? type : type)
            if wanted.isQuantized, shape.last! % wanted.blockSize != 0 {
                return Entry(name: name, shape: shape, type: .bf16,
                             note: "row length \(shape.last!) is not a multiple of \(wanted.blockSize): stored as bf16 instead of \(wanted)")
            }
            return Entry(name: name, shape: shape, type: wanted, note: nil)
        }
    }
}
