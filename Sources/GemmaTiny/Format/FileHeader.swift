import GemmaKernels

/// The fixed 128-byte header at the start of every model file (docs/FORMAT.md).
public struct FileHeader: Sendable, Equatable {
    public static let magic: [UInt8] = Array("GTMODEL\0".utf8)
    /// Version 2 added the q5 storage type, version 3 the K types (q4k, q6k). A file is written
    /// with the lowest version that holds its tensor types, so that older readers still open
    /// files that do not use the newer types.
    public static let currentVersion: UInt32 = 3
    public static let supportedVersions: ClosedRange<UInt32> = 1...currentVersion

    /// The lowest version that can hold a tensor of `type`.
    public static func version(for type: StorageType) -> UInt32 {
        switch type {
        case .f32, .bf16, .q8, .q4: return 1
        case .q5: return 2
        case .q4k, .q6k: return 3
        }
    }

    /// The lowest version that can hold tensors of these types.
    public static func version(for types: some Sequence<StorageType>) -> UInt32 {
        types.reduce(1) { max($0, version(for: $1)) }
    }
    public static let size = 128
    /// Tensor data starts on a page boundary, and every uncompressed tensor on a 64-byte one.
    public static let dataAlignment = 4096
    public static let tensorAlignment = 64

    public var version: UInt32 = currentVersion
    public var flags: UInt32 = 0
    public var metadata: Range<Int> = 0..<0
    public var tokenizer: Range<Int> = 0..<0
    public var tensorTable: Range<Int> = 0..<0
    public var data: Range<Int> = 0..<0
    public var fileLength: Int = 0
    /// XXH64 over the metadata, tokenizer and tensor-table sections, in that order.
    public var sectionsChecksum: UInt64 = 0

    public init() {}

    func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.raw(Self.magic)
        w.u32(version)
        w.u32(flags)
        for r in [metadata, tokenizer, tensorTable, data] {
            w.u64(UInt64(r.lowerBound))
            w.u64(UInt64(r.count))
        }
        w.u64(UInt64(fileLength))
        w.u64(sectionsChecksum)
        w.raw(repeatElement(0, count: 120 - w.bytes.count))
        let sum = w.bytes.withUnsafeBytes { gt_xxh64($0.baseAddress, $0.count, 0) }
        w.u64(sum)
        return w.bytes
    }

    /// Parses and checks the header against the real file size: every section lies inside the
    /// file, after the header, without overlapping another.
    static func decode(_ bytes: UnsafeRawBufferPointer, path: String) throws(ModelFileError) -> FileHeader {
        guard bytes.count >= 8, Array(bytes[0..<8]) == magic else {
            if let format = ForeignModelFormat.detect(bytes) { throw .foreignFormat(path: path, format: format) }
            throw .notAModelFile(path: path)
        }
        guard bytes.count >= size else { throw .truncated("file is \(bytes.count) bytes, shorter than the \(size)-byte header") }
        // The header's own checksum first: a damaged header is reported as such, not as a
        // section that seems to lie outside the file.
        let stored = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 120, as: UInt64.self))
        guard stored == gt_xxh64(bytes.baseAddress, 120, 0) else { throw .corruptHeader("header checksum mismatch") }
        var r = ByteReader(UnsafeRawBufferPointer(rebasing: bytes[0..<size]), context: "header")
        _ = try r.bytes(8)
        var h = FileHeader()
        h.version = try r.u32()
        guard supportedVersions.contains(h.version) else { throw .unsupportedVersion(h.version) }
        h.flags = try r.u32()
        var ranges: [Range<Int>] = []
        for name in ["metadata", "tokenizer", "tensor table", "data"] {
            let offset = try r.size(), length = try r.size()
            let end = try checkedAdd(offset, length, "\(name) section end")
            guard offset >= size, end <= bytes.count else {
                throw .truncated("\(name) section [\(offset), \(end)) lies outside the \(bytes.count)-byte file")
            }
            ranges.append(offset..<end)
        }
        (h.metadata, h.tokenizer, h.tensorTable, h.data) = (ranges[0], ranges[1], ranges[2], ranges[3])
        h.fileLength = try r.size()
        h.sectionsChecksum = try r.u64()
        guard h.fileLength <= bytes.count else {
            throw .truncated("header says \(h.fileLength) bytes, file has \(bytes.count)")
        }
        guard h.fileLength == bytes.count else {
            throw .corruptHeader("the file has \(bytes.count) bytes, \(bytes.count - h.fileLength) more than its header says (\(h.fileLength))")
        }
        let sorted = ranges.filter { !$0.isEmpty }.sorted { $0.lowerBound < $1.lowerBound }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.upperBound > b.lowerBound {
            throw .corruptHeader("sections overlap")
        }
        guard h.data.lowerBound % dataAlignment == 0 else { throw .corruptHeader("data section is not page-aligned") }
        var sectionsHash = gt_xxh64_state()
        gt_xxh64_reset(&sectionsHash, 0)
        for r in [h.metadata, h.tokenizer, h.tensorTable] {
            gt_xxh64_update(&sectionsHash, bytes.baseAddress! + r.lowerBound, r.count)
        }
        guard gt_xxh64_digest(&sectionsHash) == h.sectionsChecksum else {
            throw .corruptHeader("metadata/tokenizer/tensor-table checksum mismatch")
        }
        return h
    }
}
