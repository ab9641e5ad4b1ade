import GemmaTiny

/// Which tensors are stored zstd-compressed.
public enum CompressionChoice: String, Sendable, CaseIterable {
    /// Those that zstd shrinks by at least `autoMinimumSaving`, judged on each tensor's first
    /// frame (4 MiB), up to `ModelLoader.inMemoryShare` of the tensor bytes in all (in file
    /// order; a tensor that does not fit in what is left is stored as it is): in practice the
    /// float norms, not the quantized matrices, whose bytes are close to random (zstd saves 1-6%
    /// of them). The runtime then maps the file as it is and decompresses the few compressed
    /// tensors into memory: never an unpacked copy on disk.
    case auto
    /// Every tensor: the smallest file, unpacked once into a sibling file on first use.
    case always
    /// None: mapped as it is.
    case never

    /// `auto` compresses a tensor when its compressed first frame is at most 7/8 of its size.
    public static let autoMinimumSaving = 1.0 / 8
}

public struct ConversionOptions: Sendable {
    /// Storage type of the weight matrices. The default, q4k, is a per-tensor mix like
    /// llama.cpp's Q4_K_M (`QuantizationPolicy`); q4, q5, q8, bf16 and f32 are the policies they
    /// always were (q4 was the default before q4k existed).
    public var type: StorageType
    /// Storage type of the tied embedding / LM head; nil picks the default policy
    /// (`QuantizationPolicy.defaultEmbeddingType(for:)`).
    public var embeddingType: StorageType?
    public var compression: CompressionChoice
    public var zstdLevel: Int
    /// Worker threads; 0 means one per core.
    public var threads: Int
    /// Replace an existing output file.
    public var overwrite: Bool
    /// Measure each tensor's quantization error (relative RMS).
    public var report: Bool
    /// Every weight matrix but the embedding in `type`, without the per-tensor policy
    /// (`QuantizationPolicy.sensitiveType(for:pure:)`), like llama-quantize --pure.
    public var pure: Bool

    public init(type: StorageType = .q4k, embeddingType: StorageType? = nil, compression: CompressionChoice = .auto, zstdLevel: Int = 3,
                threads: Int = 0, overwrite: Bool = false, report: Bool = false, pure: Bool = false) {
        self.type = type
        self.embeddingType = embeddingType
        self.compression = compression
        self.zstdLevel = zstdLevel
        self.threads = threads
        self.overwrite = overwrite
        self.report = report
        self.pure = pure
    }

    /// The per-tensor policy these options ask for (`QuantizationPolicy`, shared with the
    /// runtime's memory check).
    public var policy: QuantizationPolicy { QuantizationPolicy(type: type, pure: pure, embeddingType: embeddingType) }

    public var resolvedEmbeddingType: StorageType { policy.resolvedEmbeddingType }

    /// A q4 or q4k file (not `pure`) made from an already-quantized GGUF: the weight matrices
    /// follow the source's own types instead of the policy above. Their values
    /// sit on the source's grid, and rounding them onto a different, coarser grid compounds two
    /// rounding errors. So: Q4_0 -> q4 (the same grid: exact), Q8_0 -> q8, and every other
    /// quantized type (Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) -> q5 (exact for Q5_0; 4-bit grids with
    /// a minimum or sub-block scales fit inside q5's 32 levels far better than inside q4's 16).
    /// The source's choice of types is its quantizer's per-tensor policy (llama.cpp's Q4_K_M keeps
    /// attn_v and half of ffn_down at 6-8 bits), so it replaces ours. Float sources (F32, F16,
    /// BF16) and other types keep the policy. On Gemma 3 270M (Q4_K_M) this takes the q4 file
    /// from +16% perplexity to +3% of bf16 at the same size (docs/BENCHMARKS.md).
    /// A q4 file keeps the embedding at its own policy (q8) and maps the K types to q5 as it
    /// always did. A q4k file stores Q4_K and Q6_K as q4k and q6k, the same bytes copied
    /// (`Converter`), and lets the embedding follow the source too unless `--embedding-type`
    /// is given: a Q4_K_M GGUF then converts without any requantization.
    public static func typeForQuantizedSource(_ sourceTypeName: String, type: StorageType, pure: Bool) -> StorageType? {
        guard !pure, type == .q4 || type == .q4k else { return nil }
        switch sourceTypeName {
        case "Q4_0": return .q4
        case "Q8_0": return .q8
        case "Q4_K" where type == .q4k: return .q4k
        case "Q6_K" where type == .q4k: return .q6k
        case "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K": return .q5
        default: return nil
        }
    }

    /// `typeForQuantizedSource` for one tensor of the plan: nil for the embedding unless the
    /// q4k policy lets it follow the source (no `--embedding-type`).
    public func typeForQuantizedSource(_ sourceTypeName: String, tensor: String) -> StorageType? {
        if tensor == ModelSchema.embedding.name, type != .q4k || embeddingType != nil { return nil }
        return Self.typeForQuantizedSource(sourceTypeName, type: type, pure: pure)
    }

    public var resolvedThreads: Int { threads > 0 ? threads : ProcessInfo.processInfo.activeProcessorCount }

    func validate() throws(ConversionError) {
        guard (1...22).contains(zstdLevel) else { throw .invalidOption("--zstd-level must be between 1 and 22, got \(zstdLevel)") }
        guard (0...1024).contains(threads) else { throw .invalidOption("--threads must be between 1 and 1024 (0: one per core), got \(threads)") }
    }
}

import Foundation

public struct ConversionSummary: Sendable {
    public struct TensorReport: Sendable {
        public var name: String
        public var type: StorageType
        public var shape: [Int]
        public var storedBytes: Int
        /// Stored zstd-compressed (`CompressionChoice`).
        public var compressed: Bool
        /// sqrt(sum (w - q)^2 / sum w^2); nil unless a report was asked for.
        public var relativeRMSError: Double?
    }

    public var outputPath: String
    public var outputBytes: Int
    public var inputBytes: Int
    public var parameterCount: Int
    /// Uncompressed bytes of all tensors.
    public var tensorBytes: Int
    /// Bytes of all tensors as stored (after zstd).
    public var storedBytes: Int
    public var seconds: Double
    public var tensors: [TensorReport]
    /// One-line remarks: ignored tensors, fallbacks.
    public var notices: [String]

    public var bitsPerWeight: Double { Double(tensorBytes * 8) / Double(max(parameterCount, 1)) }
    /// "f32 ×25, q4k ×20, q6k ×9": how many tensors of each type the file holds.
    public var typeCounts: String {
        let counts = Dictionary(grouping: tensors, by: \.type).mapValues(\.count)
        return counts.keys.sorted { $0.rawValue < $1.rawValue }.map { "\($0) ×\(counts[$0]!)" }.joined(separator: ", ")
    }
    public var compressedTensorCount: Int { tensors.filter(\.compressed).count }
    public var storedBitsPerWeight: Double { Double(storedBytes * 8) / Double(max(parameterCount, 1)) }
    public var compressionRatio: Double { Double(tensorBytes) / Double(max(storedBytes, 1)) }
    public var inputMegabytesPerSecond: Double { Double(inputBytes) / 1e6 / max(seconds, 1e-9) }
}
