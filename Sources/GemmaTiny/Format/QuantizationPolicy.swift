/// Which storage type each tensor of a model file gets, from `gemma-quantize`'s `--type`,
/// `--pure` and `--embedding-type`: the converter's tensor plan follows it, and the runtime's
/// memory check sizes the files it suggests with it (`MemoryFit`), so the two cannot disagree.
///
/// The default, `--type q4k`, is a dense model's llama.cpp Q4_K_M (llama_tensor_get_type in
/// llama-quant.cpp):
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
/// `--type q4` keeps k/v/down and the embedding at q8 (`sensitiveType`); other types, and
/// `--pure`, put every matrix but the embedding in `type`.
public struct QuantizationPolicy: Sendable, Equatable {
    public var type: StorageType
    /// Every weight matrix but the embedding in `type`, like llama-quantize --pure.
    public var pure: Bool
    /// The tied embedding's type; nil for the default of `type` (`defaultEmbeddingType`).
    public var embeddingType: StorageType?

    public init(type: StorageType = .q4k, pure: Bool = false, embeddingType: StorageType? = nil) {
        self.type = type
        self.pure = pure
        self.embeddingType = embeddingType
    }

    /// The tied embedding doubles as the LM head over a 256k vocabulary, where 4-bit error shows
    /// most: a q4 file keeps it at q8 and a q4k file at q6k (as llama.cpp's Q4_K_M does) unless
    /// asked otherwise. Other types keep it as asked.
    public static func defaultEmbeddingType(for type: StorageType) -> StorageType {
        switch type {
        case .q4: return .q8
        case .q4k: return .q6k
        default: return type
        }
    }

    public var resolvedEmbeddingType: StorageType { embeddingType ?? Self.defaultEmbeddingType(for: type) }

    /// The matrices where 4-bit error costs the most in a q4 file: the attention's value and key
    /// projections and the MLP's down projection (its input is the wide, heavy-tailed GELU
    /// product). They stay at q8, as llama.cpp's Q4_K_M keeps attn_v and ffn_down at 6 bits; on
    /// Gemma 3 270M this takes perplexity from +37% to a few percent of bf16 (docs/BENCHMARKS.md).
    public static let sensitiveMatrices = [ModelSchema.kProj, ModelSchema.vProj, ModelSchema.downProj].map(\.name)

    public static func sensitiveType(for type: StorageType, pure: Bool) -> StorageType {
        type == .q4 && !pure ? .q8 : type
    }

    public var resolvedSensitiveType: StorageType { Self.sensitiveType(for: type, pure: pure) }

    /// The type asked for the weight matrix `name` of a model with `layers` layers, before the
    /// fallbacks of `fitted`.
    public func wantedType(matrix name: String, layers: Int) -> StorageType {
        if name == ModelSchema.embedding.name { return resolvedEmbeddingType }
        if type == .q4k, !pure { return Self.kQuantMix(name: name, layers: layers) }
        return Self.sensitiveMatrices.contains(where: name.hasSuffix) ? resolvedSensitiveType : type
    }

    /// `wanted`, or what stands in for it when a row of `rowLength` values is not whole blocks of
    /// it: llama.cpp's fallbacks for the K types (q4k -> q5, q6k -> q8), then bf16.
    public static func fitted(_ wanted: StorageType, rowLength: Int) -> StorageType {
        fallbacks(of: wanted).first { !$0.isQuantized || rowLength % $0.blockSize == 0 } ?? .bf16
    }

    /// `type`, then the types standing in for it in turn (q4k, q5; q6k, q8; q4).
    public static func fallbacks(of type: StorageType) -> [StorageType] {
        var chain = [type]
        while let next = fallback[chain.last!] { chain.append(next) }
        return chain
    }

    /// Matrices that get q6k in the layers that use more bits.
    static let moreBitsMatrices = [ModelSchema.vProj.name, ModelSchema.downProj.name]

    /// llama.cpp's tensor_type_fallback: a 256-block type whose row length is not whole
    /// super-blocks becomes a 32-block type of at least as many bits.
    static let fallback: [StorageType: StorageType] = [.q4k: .q5, .q6k: .q8]

    /// llama.cpp's use_more_bits.
    public static func usesMoreBits(layer i: Int, of n: Int) -> Bool {
        i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
    }

    static func kQuantMix(name: String, layers: Int) -> StorageType {
        if name == ModelSchema.embedding.name { return .q6k }
        if let layer = layerIndex(name), moreBitsMatrices.contains(where: { name.hasSuffix($0) }),
           usesMoreBits(layer: layer, of: layers) {
            return .q6k
        }
        return .q4k
    }

    /// N of `model.layers.N.…`.
    public static func layerIndex(_ name: String) -> Int? {
        let parts = name.split(separator: ".")
        guard parts.count > 2, parts[0] == "model", parts[1] == "layers" else { return nil }
        return Int(parts[2])
    }
}
