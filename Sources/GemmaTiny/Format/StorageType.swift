import GemmaKernels

/// How a tensor's values are stored. Raw values match the C kernels' GT_* constants.
public enum StorageType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0
    case bf16 = 1
    case q8 = 2
    case q4 = 3
    case q5 = 4
    /// ggml's Q4_K: super-blocks of 256 (eight sub-blocks of 32 with 6-bit scales and minimums).
    case q4k = 5
    /// ggml's Q6_K: super-blocks of 256 (sixteen sub-blocks of 16 with int8 scales).
    case q6k = 6

    public init?(name: String) {
        switch name.lowercased() {
        case "f32", "float32": self = .f32
        case "bf16", "bfloat16": self = .bf16
        case "q8": self = .q8
        case "q4": self = .q4
        case "q5": self = .q5
        case "q4k": self = .q4k
        case "q6k": self = .q6k
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .f32: return "f32"
        case .bf16: return "bf16"
        case .q8: return "q8"
        case .q4: return "q4"
        case .q5: return "q5"
        case .q4k: return "q4k"
        case .q6k: return "q6k"
        }
    }

    /// Values per quantization block (1 for plain types; 256 for the K types' super-blocks).
    public var blockSize: Int {
        switch self {
        case .f32, .bf16: return 1
        case .q8, .q4, .q5: return Int(GT_BLOCK)
        case .q4k, .q6k: return Int(GT_KBLOCK)
        }
    }

    public var isQuantized: Bool { blockSize > 1 }
    /// ggml's K-quant layouts (rows of whole 256-value super-blocks; file format version 3).
    public var isKQuant: Bool { self == .q4k || self == .q6k }

    /// Bytes per block, scales included.
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .bf16: return 2
        case .q8: return Int(GT_Q8_BLOCK_BYTES)
        case .q4: return Int(GT_Q4_BLOCK_BYTES)
        case .q5: return Int(GT_Q5_BLOCK_BYTES)
        case .q4k: return Int(GT_Q4K_BLOCK_BYTES)
        case .q6k: return Int(GT_Q6K_BLOCK_BYTES)
        }
    }

    /// Storage cost including the per-block scales: 4.5 for q4 and q4k, 6.5625 for q6k.
    public var bitsPerWeight: Double { Double(blockBytes * 8) / Double(blockSize) }

    /// Bytes for one row of `count` values, or nil when the row is not whole blocks.
    public func rowBytes(_ count: Int) -> Int? {
        guard count >= 0 else { return nil }
        let n = gt_row_bytes(Int32(rawValue), count)
        return n == 0 && count != 0 ? nil : n
    }
}

/// Written by name ("q4") in the JSON metadata.
extension StorageType: Codable {
    public init(from decoder: Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        guard let type = StorageType(name: name) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown storage type \(name)"))
        }
        self = type
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
