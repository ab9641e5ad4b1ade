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
