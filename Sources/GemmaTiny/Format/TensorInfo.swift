/// One entry of the tensor table.
public struct TensorInfo: Sendable, Equatable {
    public enum Compression: UInt8, Sendable { case none = 0, zstd = 1 }
    /// How rows are arranged. Only plain row-major blocks exist in version 1; the field leaves
    /// room for kernel-specific interleavings written by the converter.
    public enum Layout: UInt8, Sendable { case rowMajor = 0 }

    public var name: String
    public var type: StorageType
    public var layout: Layout = .rowMajor
    public var compression: Compression = .none
    /// Row-major shape, outermost first (as PyTorch lists it). The last dimension is the row.
    public var shape: [Int]
    /// Offset of the stored bytes from the start of the data section.
    public var offset: Int = 0
    public var storedLength: Int = 0
    /// Uncompressed length: rows * rowBytes.
    public var length: Int = 0
    /// XXH64 of the uncompressed bytes.
    public var checksum: UInt64 = 0
    /// XXH64 of the stored bytes (equal to `checksum` when not compressed).
    public var storedChecksum: UInt64 = 0

    public init(name: String, type: StorageType, shape: [Int]) {
        self.name = name
        self.type = type
        self.shape = shape
    }

    public var rowLength: Int { shape.last ?? 1 }
    public var rowCount: Int { shape.dropLast().reduce(1, *) }
    public var elementCount: Int { shape.reduce(1, *) }
    /// Bytes per row (valid after validation).
    public var rowBytes: Int { type.rowBytes(rowLength) ?? 0 }

    /// Expected uncompressed length, or nil if the shape is impossible for the type.
    public static func expectedLength(type: StorageType, shape: [Int]) -> Int? {
        guard !shape.isEmpty, shape.count <= 4, shape.allSatisfy({ $0 > 0 && $0 <= 1 << 31 }) else { return nil }
        var rows = 1
        for d in shape.dropLast() {
            let (r, o) = rows.multipliedReportingOverflow(by: d)
            guard !o else { return nil }
            rows = r
        }
        guard let rowBytes = type.rowBytes(shape.last!) else { return nil }
        let (total, o) = rows.multipliedReportingOverflow(by: rowBytes)
        return o ? nil : total
    }
}

/// Binary encoding of the tensor table (docs/FORMAT.md).
enum TensorTableCodec {
    static let maxNameBytes = 1024
    static let maxTensors = 1 << 20

    static func encode(_ tensors: [TensorInfo]) -> [UInt8] {
        var w = ByteWriter()
        w.u32(UInt32(tensors.count))
        for t in tensors {
            let name = Array(t.name.utf8)
            w.u16(UInt16(name.count))
            w.raw(name)
            w.u8(t.type.rawValue)
            w.u8(t.layout.rawValue)
            w.u8(t.compression.rawValue)
            w.u8(UInt8(t.shape.count))
            for d in t.shape { w.u64(UInt64(d)) }
            w.u64(UInt64(t.offset))
            w.u64(UInt64(t.storedLength))
            w.u64(UInt64(t.length))
            w.u64(t.checksum)
            w.u64(t.storedChecksum)
        }
        return w.bytes
    }

    /// Decodes and validates every entry against the data section's length: sizes agree with
    /// shapes, stored ranges lie inside the data section and do not overlap, names are unique.
    static func decode(_ bytes: UnsafeRawBufferPointer, dataLength: Int) throws(ModelFileError) -> [TensorInfo] {
        var r = ByteReader(bytes, context: "tensor table")
        let count = Int(try r.u32())
        guard count <= maxTensors else { throw .invalidTensorTable("\(count) tensors is more than allowed") }
        var tensors: [TensorInfo] = []
        tensors.reserveCapacity(count)
        var names = Set<String>()
        for i in 0..<count {
            let nameLength = Int(try r.u16())
            guard nameLength > 0, nameLength <= maxNameBytes else { throw .invalidTensorTable("entry \(i): name length \(nameLength)") }
            let name = try r.utf8(nameLength)
            guard names.insert(name).inserted else { throw .invalidTensorTable("duplicate tensor \(name)") }
            guard let type = StorageType(rawValue: try r.u8()) else { throw .invalidTensorTable("\(name): unknown storage type") }
            guard let layout = TensorInfo.Layout(rawValue: try r.u8()) else { throw .invalidTensorTable("\(name): unknown layout") }
            guard let compression = TensorInfo.Compression(rawValue: try r.u8()) else { throw .invalidTensorTable("\(name): unknown compression") }
            let rank = Int(try r.u8())
            guard (1...4).contains(rank) else { throw .invalidTensorTable("\(name): rank \(rank)") }
            var shape: [Int] = []
            for _ in 0..<rank { shape.append(try r.size()) }
            var t = TensorInfo(name: name, type: type, shape: shape)
            t.layout = layout
            t.compression = compression
            t.offset = try r.size()
            t.storedLength = try r.size()
            t.length = try r.size()
            t.checksum = try r.u64()
            t.storedChecksum = try r.u64()
            guard let expected = TensorInfo.expectedLength(type: type, shape: shape) else {
                if type.isQuantized, let row = shape.last, row > 0, row % type.blockSize != 0 {
                    throw .invalidTensorTable("\(name): row length \(row) is not a whole number of \(type.blockSize)-value \(type) blocks")
                }
                throw .invalidTensorTable("\(name): shape \(shape) is invalid for \(type)")
            }
            guard t.length == expected else { throw .invalidTensorTable("\(name): length \(t.length), shape \(shape) needs \(expected)") }
            let end = try checkedAdd(t.offset, t.storedLength, "\(name) end")
            guard end <= dataLength else { throw .invalidTensorTable("\(name): data [\(t.offset), \(end)) runs past the data section (\(dataLength) bytes)") }
            if compression == .none {
                guard t.storedLength == t.length, t.storedChecksum == t.checksum else {
                    throw .invalidTensorTable("\(name): uncompressed but stored length/checksum differ")
                }
                guard t.offset % FileHeader.tensorAlignment == 0 else { throw .invalidTensorTable("\(name): misaligned offset \(t.offset)") }
            }
            tensors.append(t)
        }
        guard r.isAtEnd else { throw .invalidTensorTable("\(r.remaining) trailing bytes") }
        let byOffset = tensors.filter { $0.storedLength > 0 }.sorted { $0.offset < $1.offset }
        for (a, b) in zip(byOffset, byOffset.dropFirst()) where a.offset + a.storedLength > b.offset {
            throw .invalidTensorTable("tensors \(a.name) and \(b.name) overlap")
        }
        return tensors
    }
}
