import Foundation
import GemmaQuantizeKernels
import GemmaTiny

/// A memory-mapped GGUF file (llama.cpp's format, versions 2 and 3, little-endian) whose header,
/// metadata and tensor table have been parsed and checked against the file.
///
/// Layout: magic `GGUF`, u32 version, u64 tensor count, u64 metadata count; the metadata
/// key/value pairs (key: u64 length + UTF-8; u32 value type; value); one info per tensor (name,
/// u32 dimension count, u64 dimensions fastest-varying first, u32 ggml type, u64 offset from the
/// data section); padding to `general.alignment` (default 32); the data section. Every count,
/// length, dimension and offset is checked (without overflow) against the bytes present before
/// it is used: a malformed file gives a one-line `ConversionError.invalidGGUF`, never a crash or
/// a huge allocation.
final class GGUFFile: @unchecked Sendable {
    /// One tensor of the file.
    struct Tensor: Sendable {
        let name: String
        /// GGUF order: fastest-varying (the row) first.
        let dims: [Int]
        let type: GGMLType
        /// From the start of the data section.
        let offset: Int
        let byteCount: Int
        /// PyTorch order (outermost first): the GGUF dimensions reversed.
        var shape: [Int] { dims.reversed() }
        var elementCount: Int { dims.reduce(1, *) }
        var rowLength: Int { dims[0] }
        var rowBytes: Int { dims[0] / type.blockValues * type.blockBytes }
    }

    let path: String
    let version: UInt32
    let alignment: Int
    /// Metadata in file order, and by key.
    let keys: [String]
    let metadata: [String: GGUFValue]
    let tensors: [Tensor]
    let tensorsByName: [String: Tensor]
    /// Absolute offset of the data section.
    let dataOffset: Int
    private let mapping: MappedFile

    static let defaultAlignment = 32
    static let maxDimensions = 4
    static let maxNestingDepth = 8
    static let maxStringBytes = 1 << 30
    /// Metadata array elements in all (a 262144-token vocabulary takes 3 × 262144): bounds the
    /// memory a hostile file can make the reader allocate, whatever the file's size.
    static let maxMetadataElements = 1 << 24

    /// True when the file at `path` is a regular file starting with the GGUF magic (a FIFO is
    /// never read: that would wait for a writer forever).
    static func hasMagic(path: String) -> Bool {
        guard Converter.isRegularFile(path) else { return false }
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        guard let head = try? handle.read(upToCount: 4) else { return false }
        return Array(head) == Array("GGUF".utf8)
    }

    init(path: String) throws(ConversionError) {
        self.path = path
        let mapping: MappedFile
        do { mapping = try MappedFile(path: path) } catch {
            throw FileManager.default.fileExists(atPath: path) ? .invalidGGUF(file: path, reason: "\(error)") : .missingFile(path)
        }
        self.mapping = mapping
        func bad(_ why: String) -> ConversionError { .invalidGGUF(file: path, reason: why) }
        var r = GGUFReader(mapping.bytes, file: path)

        let magic = try r.bytes(4, "the magic")
        guard Array(magic) == Array("GGUF".utf8) else {
            throw bad("not a GGUF file: it starts with \(magic.map { String(format: "%02x", $0) }.joined(separator: " ")), not 'GGUF'")
        }
        let version = try r.u32("the version")
        if version & 0xFFFF == 0, (1...3).contains(version.byteSwapped) {
            throw bad("big-endian GGUF (version \(version.byteSwapped)) is not supported")
        }
        guard version == 2 || version == 3 else {
            throw bad("GGUF version \(version) is not supported (versions 2 and 3 are)")
        }
        self.version = version
        let tensorCount = try r.u64("the tensor count")
        let kvCount = try r.u64("the metadata count")
        // Each metadata pair takes at least 13 bytes (key length, type, a one-byte value) and
        // each tensor info at least 24: reject impossible counts before reserving anything.
        guard kvCount <= UInt64(r.remaining / 13) else {
            throw bad("truncated or corrupt: header claims \(kvCount) metadata entries in \(r.remaining) bytes")
        }
        guard tensorCount <= UInt64(r.remaining / 24) else {
            throw bad("truncated or corrupt: header claims \(tensorCount) tensors in \(r.remaining) bytes")
        }

        var keys: [String] = []
        var metadata: [String: GGUFValue] = [:]
        keys.reserveCapacity(Int(kvCount))
        for i in 0..<Int(kvCount) {
            let key = try r.string("metadata key \(i)")
            guard !key.isEmpty else { throw bad("metadata key \(i) is empty") }
            guard metadata[key] == nil else { throw bad("metadata key \(key) appears twice") }
            let rawType = try r.u32("the type of \(key)")
            let value = try r.value(rawType, context: key, depth: 0)
            keys.append(key)
            metadata[key] = value
        }
        self.keys = keys
        self.metadata = metadata

        var alignment = Self.defaultAlignment
        if let a = metadata["general.alignment"] {
            guard let n = a.integer, n > 0, n <= 1 << 30, n & (n - 1) == 0 else {
                throw bad("general.alignment = \(a) is not a power of two")
            }
            alignment = n
        }
        self.alignment = alignment

        var infos: [(name: String, dims: [Int], type: GGMLType, offset: UInt64)] = []
        infos.reserveCapacity(Int(tensorCount))
        var seen = Set<String>()
        for i in 0..<Int(tensorCount) {
            let name = try r.string("the name of tensor \(i)")
            guard !name.isEmpty else { throw bad("tensor \(i) has an empty name") }
            guard seen.insert(name).inserted else { throw bad("tensor \(name) appears twice") }
            let rank = try r.u32("the dimension count of \(name)")
            guard rank >= 1, rank <= UInt32(Self.maxDimensions) else {
                throw bad("tensor \(name) has \(rank) dimensions (1 to \(Self.maxDimensions) are allowed)")
            }
            var dims: [Int] = []
            for d in 0..<Int(rank) {
                let n = try r.u64("dimension \(d) of \(name)")
                guard n >= 1, n <= UInt64(1) << 40 else { throw bad("tensor \(name) has dimension \(d) = \(n)") }
                dims.append(Int(n))
            }
            let rawType = try r.u32("the type of \(name)")
            guard let type = GGMLType(id: rawType) else { throw bad("tensor \(name) has unknown ggml type \(rawType)") }
            let offset = try r.u64("the offset of \(name)")
            infos.append((name, dims, type, offset))
        }

        let (aligned, overflow) = r.position.addingReportingOverflow(alignment - 1)
        guard !overflow else { throw bad("corrupt: data offset overflows") }
        let dataOffset = aligned / alignment * alignment
        let fileSize = mapping.bytes.count
        guard dataOffset <= fileSize || infos.isEmpty else {
            throw bad("truncated: the data section would start at byte \(dataOffset), file has \(fileSize) bytes")
        }
        self.dataOffset = min(dataOffset, fileSize)
        let dataLength = fileSize - self.dataOffset

        var tensors: [Tensor] = []
        tensors.reserveCapacity(infos.count)
        for info in infos {
            let name = info.name
            guard info.dims[0] % info.type.blockValues == 0 else {
                throw bad("tensor \(name): row length \(info.dims[0]) is not a multiple of the \(info.type.name) block (\(info.type.blockValues))")
            }
            var count = info.dims[0] / info.type.blockValues * info.type.blockBytes
            for d in info.dims.dropFirst() {
                let (c, o) = count.multipliedReportingOverflow(by: d)
                guard !o else { throw bad("tensor \(name): dimensions \(info.dims) overflow") }
                count = c
            }
            var elements = 1
            for d in info.dims {
                let (c, o) = elements.multipliedReportingOverflow(by: d)
                guard !o else { throw bad("tensor \(name): dimensions \(info.dims) overflow") }
                elements = c
            }
            guard info.offset % UInt64(alignment) == 0 else {
                throw bad("tensor \(name): offset \(info.offset) is not a multiple of the alignment \(alignment)")
            }
            guard info.offset <= UInt64(dataLength), UInt64(count) <= UInt64(dataLength) - info.offset else {
                throw bad("tensor \(name): \(count) bytes at data offset \(info.offset) run past the end of the file (data section has \(dataLength) bytes; truncated?)")
            }
            tensors.append(Tensor(name: name, dims: info.dims, type: info.type, offset: Int(info.offset), byteCount: count))
        }
        let sorted = tensors.filter { $0.byteCount > 0 }.sorted { $0.offset < $1.offset }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.offset + a.byteCount > b.offset {
            throw bad("tensors \(a.name) and \(b.name) overlap")
        }
        self.tensors = tensors
        self.tensorsByName = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0) })
    }

    var fileSize: Int { mapping.size }

    func bytes(_ t: Tensor) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: mapping.bytes[dataOffset + t.offset ..< dataOffset + t.offset + t.byteCount])
    }

    /// Starts reading these bytes of a tensor from disk, if they are not cached.
    func prefetch(_ t: Tensor, bytes: Range<Int>) {
        mapping.adviseWillNeed(dataOffset + t.offset + bytes.lowerBound ..< dataOffset + t.offset + bytes.upperBound)
    }

    /// Drops the pages of these bytes of a tensor from this process's resident set.
    func release(_ t: Tensor, bytes: Range<Int>) {
        mapping.adviseDontNeed(dataOffset + t.offset + bytes.lowerBound ..< dataOffset + t.offset + bytes.upperBound)
    }
}

/// GGUF metadata value types, with their numbers in the file.
enum GGUFValueType: UInt32, Sendable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Bytes of a value of this type, or (string, array) the fewest bytes one can take.
    var minimumSize: Int {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64, .string: return 8
        case .array: return 12
        }
    }
}

/// A metadata value.
enum GGUFValue: Sendable, Equatable, CustomStringConvertible {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    case array(GGUFValueType, [GGUFValue])

    /// Any integer type whose value fits an Int.
    var integer: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return v <= UInt64(Int.max) ? Int(v) : nil
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    /// A float or integer value as a Double. A float32 becomes the Double its shortest decimal
    /// form spells (1e-06 stays 1e-06, not 9.99999997e-07), as Python would print it.
    var number: Double? {
        switch self {
        case .float32(let v): return Double("\(v)") ?? Double(v)
        case .float64(let v): return v
        default: return integer.map(Double.init)
        }
    }

    var string: String? { if case .string(let s) = self { return s } else { return nil } }
    var bool: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    var array: [GGUFValue]? { if case .array(_, let a) = self { return a } else { return nil } }

    var typeName: String {
        switch self {
        case .uint8: return "uint8"
        case .int8: return "int8"
        case .uint16: return "uint16"
        case .int16: return "int16"
        case .uint32: return "uint32"
        case .int32: return "int32"
        case .uint64: return "uint64"
        case .int64: return "int64"
        case .float32: return "float32"
        case .float64: return "float64"
        case .bool: return "bool"
        case .string: return "string"
        case .array(let t, _): return "array of \(t)"
        }
    }

    var description: String {
        switch self {
        case .uint8(let v): return "\(v)"
        case .int8(let v): return "\(v)"
        case .uint16(let v): return "\(v)"
        case .int16(let v): return "\(v)"
        case .uint32(let v): return "\(v)"
        case .int32(let v): return "\(v)"
        case .uint64(let v): return "\(v)"
        case .int64(let v): return "\(v)"
        case .float32(let v): return "\(v)"
        case .float64(let v): return "\(v)"
        case .bool(let v): return "\(v)"
        case .string(let s): return s.count > 60 ? String(s.prefix(60)).debugDescription + "..." : s.debugDescription
        case .array(let t, let a):
            return "[\(a.count) × \(t)" + (a.isEmpty ? "]" : ": " + a.prefix(4).map(\.description).joined(separator: ", ") + (a.count > 4 ? ", ...]" : "]"))
        }
    }
}

/// ggml tensor types: id, name, values per block and bytes per block (gguf-py's
/// GGML_QUANT_SIZES). Only some can be dequantized (`gt_gguf_can_dequantize`); the others are
/// known so that their tensors' sizes can be checked and errors can name them.
struct GGMLType: Sendable, Equatable, CustomStringConvertible {
    let id: UInt32
    let name: String
    let blockValues: Int
    let blockBytes: Int

    static let table: [UInt32: (String, Int, Int)] = [
        0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
        7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40), 10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110),
        12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
        16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50),
        20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110), 22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136),
        24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8),
        29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66),
        39: ("MXFP4", 32, 17), 40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18),
    ]

    init?(id: UInt32) {
        guard let (name, values, bytes) = Self.table[id] else { return nil }
        self.id = id
        self.name = name
        blockValues = values
        blockBytes = bytes
    }

    var description: String { name }
}

/// Bounds-checked little-endian reading of a GGUF header. Descriptions of what is being read
/// are only built when something is wrong.
struct GGUFReader {
    let bytes: UnsafeRawBufferPointer
    let file: String
    private(set) var position = 0

    init(_ bytes: UnsafeRawBufferPointer, file: String) {
        self.bytes = bytes
        self.file = file
    }

    var remaining: Int { bytes.count - position }
    /// Array elements still allowed (GGUFFile.maxMetadataElements in all).
    private(set) var elementBudget = GGUFFile.maxMetadataElements

    private func truncated(_ what: String, need: Int) -> ConversionError {
        .invalidGGUF(file: file, reason: "truncated: \(what) needs \(need) bytes at offset \(position), file has \(bytes.count)")
    }

    mutating func bytes(_ n: Int, _ what: @autoclosure () -> String) throws(ConversionError) -> UnsafeRawBufferPointer {
        guard n >= 0, n <= remaining else { throw truncated(what(), need: n) }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position ..< position + n])
    }

    mutating func load<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws(ConversionError) -> T {
        let size = MemoryLayout<T>.size
        guard size <= remaining else { throw truncated(what(), need: size) }
        defer { position += size }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: T.self))
    }

    mutating func u32(_ what: @autoclosure () -> String) throws(ConversionError) -> UInt32 { try load(UInt32.self, what()) }
    mutating func u64(_ what: @autoclosure () -> String) throws(ConversionError) -> UInt64 { try load(UInt64.self, what()) }

    mutating func string(_ what: @autoclosure () -> String) throws(ConversionError) -> String {
        let length = try u64("the length of \(what())")
        guard length <= UInt64(min(remaining, GGUFFile.maxStringBytes)) else {
            throw .invalidGGUF(file: file, reason: "truncated or corrupt: \(what()) claims \(length) bytes at offset \(position), file has \(bytes.count)")
        }
        let raw = try bytes(Int(length), what())
        guard let s = String(validating: raw, as: UTF8.self) else {
            throw .invalidGGUF(file: file, reason: "\(what()) is not valid UTF-8")
        }
        return s
    }

    mutating func value(_ rawType: UInt32, context: @autoclosure () -> String, depth: Int) throws(ConversionError) -> GGUFValue {
        guard let type = GGUFValueType(rawValue: rawType) else {
            throw .invalidGGUF(file: file, reason: "metadata \(context()) has unknown value type \(rawType)")
        }
        switch type {
        case .uint8: return .uint8(try load(UInt8.self, "metadata \(context())"))
        case .int8: return .int8(try load(Int8.self, "metadata \(context())"))
        case .uint16: return .uint16(try load(UInt16.self, "metadata \(context())"))
        case .int16: return .int16(try load(Int16.self, "metadata \(context())"))
        case .uint32: return .uint32(try load(UInt32.self, "metadata \(context())"))
        case .int32: return .int32(try load(Int32.self, "metadata \(context())"))
        case .uint64: return .uint64(try load(UInt64.self, "metadata \(context())"))
        case .int64: return .int64(try load(Int64.self, "metadata \(context())"))
        case .float32: return .float32(Float(bitPattern: try load(UInt32.self, "metadata \(context())")))
        case .float64: return .float64(Double(bitPattern: try load(UInt64.self, "metadata \(context())")))
        case .bool:
            let b = try load(UInt8.self, "metadata \(context())")
            guard b <= 1 else { throw .invalidGGUF(file: file, reason: "metadata \(context()) is a bool of value \(b)") }
            return .bool(b == 1)
        case .string: return .string(try string("metadata \(context())"))
        case .array:
            guard depth < GGUFFile.maxNestingDepth else {
                throw .invalidGGUF(file: file, reason: "metadata \(context()) nests arrays more than \(GGUFFile.maxNestingDepth) deep")
            }
            let rawElement = try u32("the element type of metadata \(context())")
            guard let element = GGUFValueType(rawValue: rawElement) else {
                throw .invalidGGUF(file: file, reason: "metadata \(context()) is an array of unknown value type \(rawElement)")
            }
            let count = try u64("the length of metadata \(context())")
            guard count <= UInt64(remaining / element.minimumSize) else {
                throw .invalidGGUF(file: file, reason: "truncated or corrupt: metadata \(context()) claims \(count) elements of \(element) in \(remaining) bytes")
            }
            guard count <= UInt64(elementBudget) else {
                throw .invalidGGUF(file: file, reason: "metadata \(context()) has \(count) elements: more than the \(GGUFFile.maxMetadataElements) array elements this reader accepts in all")
            }
            elementBudget -= Int(count)
            var list: [GGUFValue] = []
            list.reserveCapacity(Int(count))
            for i in 0..<Int(count) {
                list.append(try value(rawElement, context: "\(context())[\(i)]", depth: depth + 1))
            }
            return .array(element, list)
        }
    }
}
