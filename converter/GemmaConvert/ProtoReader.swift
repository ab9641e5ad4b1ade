/// A problem found while parsing protobuf bytes (wrapped with the file name by the caller).
struct ProtoError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// A bounds-checked cursor over one protobuf message (wire format only, no schema): every
/// read checks the message's end and throws ProtoError instead of reading past it.
struct ProtoReader {
    enum Wire: UInt64 {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, startGroup = 3, endGroup = 4, fixed32 = 5
    }

    private let bytes: [UInt8]
    private var position: Int
    private let end: Int
    private let context: String

    init(_ bytes: [UInt8], _ range: Range<Int>, context: String) {
        self.bytes = bytes
        position = range.lowerBound
        end = range.upperBound
        self.context = context
    }

    private func fail(_ what: String) -> ProtoError {
        ProtoError("\(context): \(what) at byte \(position)")
    }

    /// The next field's number and wire type, or nil at the end of the message.
    mutating func nextField() throws(ProtoError) -> (Int, Wire)? {
        guard position < end else { return nil }
        let key = try rawVarint()
        guard let wire = Wire(rawValue: key & 7) else { throw fail("invalid wire type \(key & 7)") }
        let field = key >> 3
        guard field >= 1, field <= 0x1FFF_FFFF else { throw fail("invalid field number \(field)") }
        return (Int(field), wire)
    }

    private mutating func rawVarint() throws(ProtoError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else { throw fail("truncated varint") }
            let b = bytes[position]
            position += 1
            value |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return value }
            shift += 7
            guard shift < 70 else { throw fail("varint longer than 10 bytes") }
        }
    }

    private mutating func take(_ n: Int) throws(ProtoError) -> Range<Int> {
        guard n >= 0, n <= end - position else {
            throw fail("field needs \(n) bytes, only \(end - position) left (truncated?)")
        }
        defer { position += n }
        return position..<(position + n)
    }

    private func expect(_ wire: Wire, _ expected: Wire, _ field: Int) throws(ProtoError) {
        guard wire == expected else { throw fail("field \(field) has wire type \(wire.rawValue), expected \(expected.rawValue)") }
    }

    mutating func varint(_ field: Int, _ wire: Wire) throws(ProtoError) -> UInt64 {
        try expect(wire, .varint, field)
        return try rawVarint()
    }

    /// int32 fields are sign-extended varints (negative values take 10 bytes).
    mutating func int32(_ field: Int, _ wire: Wire) throws(ProtoError) -> Int32 {
        Int32(truncatingIfNeeded: try varint(field, wire))
    }

    mutating func float(_ field: Int, _ wire: Wire) throws(ProtoError) -> Float {
        try expect(wire, .fixed32, field)
        let r = try take(4)
        var bits: UInt32 = 0
        for i in 0..<4 { bits |= UInt32(bytes[r.lowerBound + i]) << (8 * i) }
        return Float(bitPattern: bits)
    }

    /// A length-delimited field (embedded message or bytes): its byte range.
    mutating func message(_ field: Int, _ wire: Wire) throws(ProtoError) -> Range<Int> {
        try expect(wire, .lengthDelimited, field)
        let length = try rawVarint()
        guard length <= UInt64(end - position) else {
            throw fail("field \(field) claims \(length) bytes, only \(end - position) left (truncated?)")
        }
        return try take(Int(length))
    }

    mutating func string(_ field: Int, _ wire: Wire) throws(ProtoError) -> String {
        let r = try message(field, wire)
        guard let s = String(validating: bytes[r], as: UTF8.self) else {
            throw fail("field \(field) is not valid UTF-8")
        }
        return s
    }

    /// Skips an unknown field (groups included, nested at most 64 deep).
    mutating func skip(_ wire: Wire, depth: Int = 0) throws(ProtoError) {
        switch wire {
        case .varint: _ = try rawVarint()
        case .fixed64: _ = try take(8)
        case .fixed32: _ = try take(4)
        case .lengthDelimited:
            let length = try rawVarint()
            guard length <= UInt64(end - position) else { throw fail("field claims \(length) bytes, only \(end - position) left (truncated?)") }
            _ = try take(Int(length))
        case .startGroup:
            guard depth < 64 else { throw fail("groups nested too deeply") }
            while true {
                guard let (_, inner) = try nextField() else { throw fail("unterminated group") }
                if inner == .endGroup { return }
                try skip(inner, depth: depth + 1)
            }
        case .endGroup:
            throw fail("unexpected end of group")
        }
    }
}
