import GemmaKernels

/// How a tensor's values are stored. Raw values match the C kernels' GT_* constants.
public enum StorageType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0
    case bf16 = 1
    case q8 = 2
    case q4 = 3
    case q5 = 4

    public init?(name: String) {
        switch name.lowercased() {
        case "f32", "float32": self = .f32
        case "bf16", "bfloat16": self = .bf16
        case "q8": self = .q8
        case "q4": self = .q4
        case "q5": self = .q5
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
        }
    }

    /// Values per quantization block (1 for plain types).
    public var blockSize: Int { isQuantized ? Int(GT_BLOCK) : 1 }
    public var isQuantized: Bool { self == .q8 || self == .q4 || self == .q5 }

    /// Storage cost including the per-block scale.
    public var bitsPerWeight: Double {
        switch self {
        case .f32: return 32
        case .bf16: return 16
        case .q8: return Double(GT_Q8_BLOCK_BYTES * 8) / Double(GT_BLOCK)
        case .q4: return Double(GT_Q4_BLOCK_BYTES * 8) / Double(GT_BLOCK)
        case .q5: return Double(GT_Q5_BLOCK_BYTES * 8) / Double(GT_BLOCK)
        }
    }

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
