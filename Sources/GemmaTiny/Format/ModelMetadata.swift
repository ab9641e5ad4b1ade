/// The JSON metadata section: configuration, tokenizer settings, quantization and provenance.
public struct ModelMetadata: Codable, Sendable, Equatable {
    public var config: ModelConfig
    public var tokenizer: TokenizerSettings
    public var quantization: QuantizationInfo
    public var provenance: Provenance
    /// Set in an unpacked sibling file: identifies the compressed file it was made from.
    public var unpackedFrom: UnpackedSource?

    enum CodingKeys: String, CodingKey {
        case config, tokenizer, quantization, provenance
        case unpackedFrom = "unpacked_from"
    }

    public init(config: ModelConfig, tokenizer: TokenizerSettings, quantization: QuantizationInfo,
                provenance: Provenance, unpackedFrom: UnpackedSource? = nil) {
        self.config = config
        self.tokenizer = tokenizer
        self.quantization = quantization
        self.provenance = provenance
        self.unpackedFrom = unpackedFrom
    }
}

/// SentencePiece settings that change how text is encoded.
public struct TokenizerSettings: Codable, Sendable, Equatable {
    /// Whose encoding rules the tokenizer follows (metadata key `semantics`, absent for SentencePiece).
    public enum Semantics: String, Codable, Sendable {
        /// The sentencepiece library's (a model converted from tokenizer.model).
        case sentencePiece = "sentencepiece"
        /// llama.cpp's SentencePiece tokenizer (`llm_tokenizer_spm` after `tokenizer_st_partition`),
        /// for a vocabulary imported from a GGUF file: user-defined pieces are matched on the raw
        /// text first, longest first, and BPE merges the text between them using every other
        /// piece, control pieces included (see docs/FORMAT.md, "Tokenizer").
        case llamaCpp = "llama.cpp"
    }

    /// "bpe" (Gemma) or "unigram" (refused by the runtime today).
    public var model: String
    public var bosId: Int
    public var eosId: Int
    public var padId: Int
    public var unkId: Int
    public var addDummyPrefix: Bool
    public var removeExtraWhitespaces: Bool
    public var escapeWhitespaces: Bool
    public var byteFallback: Bool
    /// Normalization rule name; Gemma uses "identity".
    public var normalizer: String
    public var semantics: Semantics

    enum CodingKeys: String, CodingKey {
        case model
        case bosId = "bos_id", eosId = "eos_id", padId = "pad_id", unkId = "unk_id"
        case addDummyPrefix = "add_dummy_prefix"
        case removeExtraWhitespaces = "remove_extra_whitespaces"
        case escapeWhitespaces = "escape_whitespaces"
        case byteFallback = "byte_fallback"
        case normalizer
        case semantics
    }

    public init(model: String, bosId: Int, eosId: Int, padId: Int, unkId: Int, addDummyPrefix: Bool,
                removeExtraWhitespaces: Bool, escapeWhitespaces: Bool, byteFallback: Bool, normalizer: String,
                semantics: Semantics = .sentencePiece) {
        self.model = model
        self.bosId = bosId
        self.eosId = eosId
        self.padId = padId
        self.unkId = unkId
        self.addDummyPrefix = addDummyPrefix
        self.removeExtraWhitespaces = removeExtraWhitespaces
        self.escapeWhitespaces = escapeWhitespaces
        self.byteFallback = byteFallback
        self.normalizer = normalizer
        self.semantics = semantics
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(String.self, forKey: .model)
        bosId = try c.decode(Int.self, forKey: .bosId)
        eosId = try c.decode(Int.self, forKey: .eosId)
        padId = try c.decode(Int.self, forKey: .padId)
        unkId = try c.decode(Int.self, forKey: .unkId)
        addDummyPrefix = try c.decode(Bool.self, forKey: .addDummyPrefix)
        removeExtraWhitespaces = try c.decode(Bool.self, forKey: .removeExtraWhitespaces)
        escapeWhitespaces = try c.decode(Bool.self, forKey: .escapeWhitespaces)
        byteFallback = try c.decode(Bool.self, forKey: .byteFallback)
        normalizer = try c.decode(String.self, forKey: .normalizer)
        semantics = try c.decodeIfPresent(Semantics.self, forKey: .semantics) ?? .sentencePiece
    }

    /// `semantics` is written only when it is not SentencePiece's, so such files are unchanged.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model)
        try c.encode(bosId, forKey: .bosId)
        try c.encode(eosId, forKey: .eosId)
        try c.encode(padId, forKey: .padId)
        try c.encode(unkId, forKey: .unkId)
        try c.encode(addDummyPrefix, forKey: .addDummyPrefix)
        try c.encode(removeExtraWhitespaces, forKey: .removeExtraWhitespaces)
        try c.encode(escapeWhitespaces, forKey: .escapeWhitespaces)
        try c.encode(byteFallback, forKey: .byteFallback)
        try c.encode(normalizer, forKey: .normalizer)
        if semantics != .sentencePiece { try c.encode(semantics, forKey: .semantics) }
    }
}

public struct QuantizationInfo: Codable, Sendable, Equatable {
    /// The type asked for the large matrices, and for the tied embedding / LM head.
    public var type: StorageType
    public var embeddingType: StorageType
    public var blockSize: Int
    /// zstd level, or nil when tensor data is not compressed.
    public var zstdLevel: Int?

    enum CodingKeys: String, CodingKey {
        case type
        case embeddingType = "embedding_type"
        case blockSize = "block_size"
        case zstdLevel = "zstd_level"
    }

    public init(type: StorageType, embeddingType: StorageType, blockSize: Int, zstdLevel: Int?) {
        self.type = type
        self.embeddingType = embeddingType
        self.blockSize = blockSize
        self.zstdLevel = zstdLevel
    }
}

public struct Provenance: Codable, Sendable, Equatable {
    public struct SourceFile: Codable, Sendable, Equatable {
        public var name: String
        public var size: Int
        public init(name: String, size: Int) {
            self.name = name
            self.size = size
        }
    }

    public var tool: String
    public var sourceFormat: String
    public var sourceArchitecture: String
    public var sourceDtype: String
    public var sourceFiles: [SourceFile]

    enum CodingKeys: String, CodingKey {
        case tool
        case sourceFormat = "source_format"
        case sourceArchitecture = "source_architecture"
        case sourceDtype = "source_dtype"
        case sourceFiles = "source_files"
    }

    public init(tool: String, sourceFormat: String, sourceArchitecture: String, sourceDtype: String, sourceFiles: [SourceFile]) {
        self.tool = tool
        self.sourceFormat = sourceFormat
        self.sourceArchitecture = sourceArchitecture
        self.sourceDtype = sourceDtype
        self.sourceFiles = sourceFiles
    }
}

/// Ties an unpacked sibling to the compressed file it came from: if that file is replaced,
/// its size or header checksum changes and the sibling is rebuilt.
public struct UnpackedSource: Codable, Sendable, Equatable {
    public var fileLength: Int
    public var headerChecksum: UInt64

    enum CodingKeys: String, CodingKey {
        case fileLength = "file_length"
        case headerChecksum = "header_checksum"
    }

    public init(fileLength: Int, headerChecksum: UInt64) {
        self.fileLength = fileLength
        self.headerChecksum = headerChecksum
    }
}

public let gemmaTinyVersion = "0.1.0"
