/// Per-id decoding data, following SentencePieceProcessor::Decode: pieces are concatenated with
/// ▁ turned into a space, control pieces vanish, the unknown piece becomes " ⁇ ", and runs of
/// byte pieces are decoded together as UTF-8 (see SentencePieceUTF8).
struct DecodeTable: Sendable {
    enum Kind: UInt8, Sendable { case text, control, unknown, byte }

    /// SentencePiece's default TrainerSpec.unk_surface.
    static let unknownSurface: [UInt8] = Array(" \u{2047} ".utf8)

    let kinds: [Kind]
    let byteValues: [UInt8]
    let surfaceBytes: [UInt8]
    let surfaceStart: [Int]  // count + 1 offsets into surfaceBytes
    let startsWithSpaceSymbol: [Bool]
    /// A leading ▁ of the first piece is dropped when the encoder would have added it.
    let stripLeadingSpace: Bool
    let removeExtraWhitespaces: Bool

    init(_ v: TokenizerVocabulary, index: VocabularyIndex, settings: TokenizerSettings) {
        let store = index.store
        var kinds = [Kind](repeating: .text, count: v.count)
        var byteValues = [UInt8](repeating: 0, count: v.count)
        var leading = [Bool](repeating: false, count: v.count)
        var bytes: [UInt8] = [], starts: [Int] = [0]
        starts.reserveCapacity(v.count + 1)
        for i in 0..<v.count {
            let piece = store.bytes(i)
            // Decoding maps each id to its piece and back (PieceToId), so a piece text shared
            // by a reserved and a normal piece decodes as the reserved one.
            let reserved = Int(index.reserved.lookup(piece.baseAddress!, piece.count))
            let canonical = reserved >= 0 ? reserved : i
            switch v.types[canonical] {
            case .control: kinds[i] = .control
            case .unknown: kinds[i] = .unknown
            case .byte:
                kinds[i] = .byte
                byteValues[i] = byteValue(ofPiece: v.pieces[canonical]) ?? 0
            case .normal, .userDefined, .unused:
                leading[i] = piece.starts(with: TextNormalizer.spaceSymbol)
                var k = 0
                while k < piece.count {
                    if k + 3 <= piece.count && piece[k] == 0xE2 && piece[k + 1] == 0x96 && piece[k + 2] == 0x81 {
                        bytes.append(0x20)  // ▁ -> space
                        k += 3
                    } else {
                        bytes.append(piece[k])
                        k += 1
                    }
                }
            }
            starts.append(bytes.count)
        }
        self.kinds = kinds
        self.byteValues = byteValues
        surfaceBytes = bytes
        surfaceStart = starts
        startsWithSpaceSymbol = leading
        stripLeadingSpace = settings.addDummyPrefix || settings.removeExtraWhitespaces
        removeExtraWhitespaces = settings.removeExtraWhitespaces
    }
}
