/// The tokenizer section of a model file: `TokenizerVocabulary` as bytes (u32 count, then per
/// piece u8 type, f32 score, u16 length, UTF-8 bytes; docs/FORMAT.md), read as untrusted input.
extension TokenizerVocabulary {
    static let maxPieces = 1 << 22
    static let maxPieceBytes = 1 << 16 - 1

    func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.u32(UInt32(pieces.count))
        for i in pieces.indices {
            let bytes = Array(pieces[i].utf8)
            w.u8(types[i].rawValue)
            w.f32(scores[i])
            w.u16(UInt16(bytes.count))
            w.raw(bytes)
        }
        return w.bytes
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws(ModelFileError) -> TokenizerVocabulary {
        var r = ByteReader(bytes, context: "tokenizer")
        let count = Int(try r.u32())
        guard count > 0, count <= maxPieces else { throw .invalidTokenizer("\(count) pieces") }
        // Each piece takes at least 7 bytes: reject absurd counts before reserving memory.
        guard count <= r.remaining / 7 else { throw .truncated("tokenizer claims \(count) pieces in \(r.remaining) bytes") }
        var v = TokenizerVocabulary(pieces: [], scores: [], types: [])
        v.pieces.reserveCapacity(count)
        v.scores.reserveCapacity(count)
        v.types.reserveCapacity(count)
        for i in 0..<count {
            guard let type = PieceType(rawValue: try r.u8()) else { throw .invalidTokenizer("piece \(i): unknown type") }
            let score = try r.f32()
            guard score.isFinite else { throw .invalidTokenizer("piece \(i): score is not finite") }
            let length = Int(try r.u16())
            let piece = try r.utf8(length)
            v.types.append(type)
            v.scores.append(score)
            v.pieces.append(piece)
        }
        guard r.isAtEnd else { throw .invalidTokenizer("\(r.remaining) trailing bytes") }
        return v
    }
}
