/// The vocabulary checked the way SentencePiece checks it on load (model_interface.cc,
/// InitializePieces) and indexed for encoding and decoding.
final class VocabularyIndex: @unchecked Sendable {  // immutable after init
    typealias PieceType = TokenizerVocabulary.PieceType

    let count: Int
    let store: PieceStore
    let scores: UnsafeMutablePointer<Float>
    let types: UnsafeMutablePointer<PieceType>
    /// NORMAL, USER_DEFINED and UNUSED pieces: the only pieces BPE merges can produce.
    let normal: PieceTable
    /// CONTROL, UNKNOWN and BYTE pieces, looked up first (SentencePiece's PieceToId).
    let reserved: PieceTable
    /// USER_DEFINED pieces: matched whole on the input and never split or merged.
    let userDefined: PrefixMatcher
    let unknownId: Int32
    let byteFallback: Bool
    /// Id of `<0xNN>` for each byte value (the unknown id where missing, as PieceToId gives).
    let byteIds: [Int32]

    init(_ v: TokenizerVocabulary, byteFallback: Bool) throws(TokenizerError) {
        guard v.scores.count == v.pieces.count, v.types.count == v.pieces.count else {
            throw .invalidVocabulary("\(v.pieces.count) pieces but \(v.scores.count) scores and \(v.types.count) types")
        }
        guard !v.pieces.isEmpty, v.pieces.count < Int(Int32.max) else {
            throw .invalidVocabulary("\(v.pieces.count) pieces")
        }
        count = v.pieces.count
        self.byteFallback = byteFallback
        store = PieceStore(v.pieces)

        var normalIds: [Int32] = [], reservedIds: [Int32] = []
        var userEntries: [(key: [UInt8], value: Int32)] = []
        var unknown: Int32 = -1
        var bytes = [Int32](repeating: -1, count: 256)
        normalIds.reserveCapacity(count)
        for i in 0..<count {
            guard store.length(i) > 0 else { throw .invalidVocabulary("piece \(i) is empty") }
            switch v.types[i] {
            case .normal, .unused:
                normalIds.append(Int32(i))
            case .userDefined:
                normalIds.append(Int32(i))
                userEntries.append((Array(store.bytes(i)), Int32(i)))
            case .control:
                reservedIds.append(Int32(i))
            case .unknown:
                guard unknown < 0 else { throw .invalidVocabulary("pieces \(unknown) and \(i) are both UNKNOWN") }
                unknown = Int32(i)
                reservedIds.append(Int32(i))
            case .byte:
                guard byteFallback else {
                    throw .invalidVocabulary("byte piece \(v.pieces[i]) (id \(i)) although byte_fallback is false")
                }
                guard let b = byteValue(ofPiece: v.pieces[i]) else {
                    throw .invalidVocabulary("byte piece \(i) is \(v.pieces[i]), not <0xNN>")
                }
                if bytes[Int(b)] < 0 { bytes[Int(b)] = Int32(i) }
                reservedIds.append(Int32(i))
            }
        }
        guard unknown >= 0 else { throw .invalidVocabulary("no UNKNOWN piece") }
        if byteFallback, let missing = bytes.firstIndex(of: -1) {
            throw .invalidVocabulary("byte_fallback is on but there is no piece for byte \(missing)")
        }
        unknownId = unknown
        byteIds = bytes.map { $0 < 0 ? unknown : $0 }

        var duplicate: Int32? = nil
        normal = PieceTable(store, ids: normalIds, duplicate: &duplicate)
        reserved = PieceTable(store, ids: reservedIds, duplicate: &duplicate)
        if let duplicate {
            throw .invalidVocabulary("piece \(v.pieces[Int(duplicate)]) is defined twice")
        }
        userDefined = PrefixMatcher(userEntries)

        scores = .allocate(capacity: count)
        scores.initialize(from: v.scores, count: count)
        types = .allocate(capacity: count)
        types.initialize(from: v.types, count: count)
    }

    deinit {
        scores.deallocate()
        types.deallocate()
    }

    /// SentencePiece's PieceToId without the fallback to the unknown id: -1 when absent.
    @inline(__always)
    func lookup(_ p: UnsafePointer<UInt8>, _ length: Int) -> Int32 {
        let r = reserved.lookup(p, length)
        return r >= 0 ? r : normal.lookup(p, length)
    }

    func lookup(_ piece: String) -> Int32 {
        var bytes = Array(piece.utf8)
        return bytes.withUnsafeMutableBufferPointer { b in
            guard let base = b.baseAddress, b.count > 0 else { return -1 }
            return lookup(UnsafePointer(base), b.count)
        }
    }
}

/// The byte of a `<0xNN>` piece (two upper-case hex digits, as SentencePiece writes them).
func byteValue(ofPiece piece: String) -> UInt8? {
    let u = Array(piece.utf8)
    guard u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E else { return nil }
    func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }
    guard let hi = hex(u[3]), let lo = hex(u[4]) else { return nil }
    return hi << 4 | lo
}
