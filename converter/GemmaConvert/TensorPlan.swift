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
            let wanted = sourceType(t.name) ?? options.policy.wantedType(matrix: t.name, layers: c.numHiddenLayers)
            return Self.fitted(name: t.name, shape: t.shape, wanted: wanted, kind: t.kind)
        }
    }

    /// `wanted`, or what stands in for it when the row length is not whole blocks of it
    /// (`QuantizationPolicy.fitted`), with a note saying so.
    static func fitted(name: String, shape: [Int], wanted: StorageType, kind: ModelSchema.TensorKind) -> Entry {
        let row = shape.last!
        let type = QuantizationPolicy.fitted(wanted, rowLength: row)
        guard type != wanted else { return Entry(name: name, shape: shape, type: type, note: nil, kind: kind) }
        // bf16: no block fits; the note names the last one tried.
        let block = type == .bf16 ? QuantizationPolicy.fallbacks(of: wanted).last!.blockSize : wanted.blockSize
        return Entry(name: name, shape: shape, type: type,
                     note: "row length \(row) is not a multiple of \(block): stored as \(type) instead of \(wanted)", kind: kind)
    }
}
