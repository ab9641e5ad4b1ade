/// A bounds-checked little-endian cursor over untrusted bytes. Every read checks the remaining
/// length first and throws instead of reading past the end.
struct ByteReader {
    private let base: UnsafeRawBufferPointer
    private(set) var position = 0
    let context: String

    init(_ bytes: UnsafeRawBufferPointer, context: String) {
        self.base = bytes
        self.context = context
    }

    var remaining: Int { base.count - position }
    var isAtEnd: Bool { position == base.count }

    private mutating func take(_ n: Int) throws(ModelFileError) -> UnsafeRawBufferPointer {
        guard n >= 0, n <= remaining else {
            throw .truncated("\(context) needs \(n) more bytes at offset \(position), has \(remaining)")
        }
        let slice = UnsafeRawBufferPointer(rebasing: base[position ..< position + n])
        position += n
        return slice
    }

    mutating func u8() throws(ModelFileError) -> UInt8 { try take(1)[0] }
    mutating func u16() throws(ModelFileError) -> UInt16 { UInt16(littleEndian: try take(2).loadUnaligned(as: UInt16.self)) }
    mutating func u32() throws(ModelFileError) -> UInt32 { UInt32(littleEndian: try take(4).loadUnaligned(as: UInt32.self)) }
    mutating func u64() throws(ModelFileError) -> UInt64 { UInt64(littleEndian: try take(8).loadUnaligned(as: UInt64.self)) }
    mutating func f32() throws(ModelFileError) -> Float { Float(bitPattern: try u32()) }

    /// A u64 that must fit an Int (offsets and sizes from the file).
    mutating func size() throws(ModelFileError) -> Int {
        let v = try u64()
        guard v <= UInt64(Int.max) else { throw .corruptHeader("\(context): size \(v) overflows") }
        return Int(v)
    }

    mutating func bytes(_ n: Int) throws(ModelFileError) -> UnsafeRawBufferPointer { try take(n) }

    mutating func utf8(_ n: Int) throws(ModelFileError) -> String {
        let raw = try take(n)
        guard let s = String(validating: raw.bindMemory(to: UInt8.self), as: UTF8.self) else {
            throw .corruptHeader("\(context): string at offset \(position - n) is not valid UTF-8")
        }
        return s
    }
}

/// Little-endian byte builder for the writer side.
struct ByteWriter {
    private(set) var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func f32(_ v: Float) { u32(v.bitPattern) }
    mutating func raw<S: Sequence>(_ s: S) where S.Element == UInt8 { bytes.append(contentsOf: s) }
    mutating func pad(to alignment: Int) {
        while bytes.count % alignment != 0 { bytes.append(0) }
    }
}

/// Checked arithmetic for offsets from untrusted files.
@inline(__always)
func checkedAdd(_ a: Int, _ b: Int, _ what: @autoclosure () -> String) throws(ModelFileError) -> Int {
    let (r, o) = a.addingReportingOverflow(b)
    guard !o else { throw .corruptHeader("\(what()) overflows") }
    return r
}

@inline(__always)
func checkedMul(_ a: Int, _ b: Int, _ what: @autoclosure () -> String) throws(ModelFileError) -> Int {
    let (r, o) = a.multipliedReportingOverflow(by: b)
    guard !o else { throw .corruptHeader("\(what()) overflows") }
    return r
}

func alignUp(_ v: Int, _ a: Int) -> Int { (v + a - 1) / a * a }
