/// Gemma's SentencePiece BPE tokenizer, built from the vocabulary and settings stored in the
/// model file. Encoding and decoding give the same results as the sentencepiece library with
/// the same model (identity normalizer).
public struct Tokenizer: Sendable {
    public let settings: TokenizerSettings
    private let pieces: [String]
    private let types: [TokenizerVocabulary.PieceType]
    private let index: VocabularyIndex
    private let normalizer: TextNormalizer
    private let encoder: BPEEncoder
    private let decodeTable: DecodeTable
    private let specials: SpecialTokenMatcher

    /// Throws when the settings ask for something other than a BPE model with the identity
    /// normalizer, or when SentencePiece itself would refuse the vocabulary.
    public init(vocabulary: TokenizerVocabulary, settings: TokenizerSettings) throws(TokenizerError) {
        guard settings.model == "bpe" else {
            throw .unsupported("model type \"\(settings.model)\" (only \"bpe\" is implemented)")
        }
        guard settings.normalizer == "identity" else {
            throw .unsupported("normalizer \"\(settings.normalizer)\" (only \"identity\" is implemented)")
        }
        let index = try VocabularyIndex(vocabulary, byteFallback: settings.byteFallback)
        guard settings.unkId == Int(index.unknownId) else {
            throw .invalidVocabulary("unk_id is \(settings.unkId) but the UNKNOWN piece is id \(index.unknownId)")
        }
        for (name, id) in [("bos_id", settings.bosId), ("eos_id", settings.eosId), ("pad_id", settings.padId)] {
            guard id >= -1 && id < vocabulary.count else {
                throw .invalidVocabulary("\(name) \(id) is outside the vocabulary of \(vocabulary.count)")
            }
        }
        self.settings = settings
        self.pieces = vocabulary.pieces
        self.types = vocabulary.types
        self.index = index
        normalizer = TextNormalizer(
            addDummyPrefix: settings.addDummyPrefix, removeExtraWhitespaces: settings.removeExtraWhitespaces,
            escapeWhitespaces: settings.escapeWhitespaces, userDefined: index.userDefined)
        encoder = BPEEncoder(vocab: index)
        decodeTable = DecodeTable(vocabulary, index: index, settings: settings)
        specials = SpecialTokenMatcher(vocabulary)
    }

    /// Number of pieces. The model's embedding may have more rows; those ids decode to nothing.
    public var vocabularySize: Int { pieces.count }
    /// -1 when the model has no such piece.
    public var bosId: Int { settings.bosId }
    public var eosId: Int { settings.eosId }
    public var padId: Int { settings.padId }
    public var unknownId: Int { settings.unkId }

    /// Control pieces recognised by `encode(_:parseSpecialTokens: true)`, by text.
    public var specialTokens: [String: Int] { specials.tokens }

    /// Encodes plain text: control pieces are never produced and no BOS is added.
    public func encode(_ text: String) -> [Int] {
        var ids: [Int] = []
        var text = text
        text.withUTF8 { encodeText($0, into: &ids) }
        return ids
    }

    /// With `parseSpecialTokens`, the text of control pieces (`<start_of_turn>`, `<bos>`, ...)
    /// becomes their ids, and each stretch of text between them is encoded as by `encode(_:)`.
    public func encode(_ text: String, parseSpecialTokens: Bool) -> [Int] {
        guard parseSpecialTokens else { return encode(text) }
        var ids: [Int] = []
        var text = text
        text.withUTF8 { utf8 in
            for segment in specials.split(utf8) {
                switch segment {
                case .special(let id): ids.append(id)
                case .text(let range): encodeText(UnsafeBufferPointer(rebasing: utf8[range]), into: &ids)
                }
            }
        }
        return ids
    }

    private func encodeText(_ utf8: UnsafeBufferPointer<UInt8>, into ids: inout [Int]) {
        let normalized = normalizer.normalize(utf8)
        encoder.encode(normalized: normalized, into: &ids)
    }

    /// The text of `ids`, as SentencePiece decodes it; ids outside the vocabulary are skipped.
    public func decode(_ ids: [Int]) -> String {
        var state = DecoderState()
        var out: [UInt8] = []
        for id in ids { state.append(id, decodeTable, streaming: false, into: &out) }
        state.finish(into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// A decoder for ids arriving one at a time.
    public func makeStreamingDecoder() -> StreamingDecoder {
        StreamingDecoder(table: decodeTable)
    }

    /// The id of a piece (its exact text, ▁ for spaces), or nil.
    public func id(of piece: String) -> Int? {
        let id = index.lookup(piece)
        return id >= 0 ? Int(id) : nil
    }

    /// The text of a piece as stored in the vocabulary, or nil outside it.
    public func piece(_ id: Int) -> String? {
        id >= 0 && id < pieces.count ? pieces[id] : nil
    }

    public func pieceType(_ id: Int) -> TokenizerVocabulary.PieceType? {
        id >= 0 && id < types.count ? types[id] : nil
    }

    /// True for control pieces (`<bos>`, `<eos>`, `<end_of_turn>`, ...).
    public func isControl(_ id: Int) -> Bool { pieceType(id) == .control }
}
