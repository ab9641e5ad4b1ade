/// Gemma's SentencePiece BPE tokenizer, built from the vocabulary and settings stored in the
/// model file. Encoding and decoding give the same results as the sentencepiece library with
/// the same model (identity normalizer); with `settings.semantics == .llamaCpp` (a model
/// imported from GGUF), encoding gives llama.cpp's ids instead (see LlamaCppPartition and
/// BPEEncoder).
public struct Tokenizer: Sendable {
    public let settings: TokenizerSettings
    private let pieces: [String]
    private let types: [TokenizerVocabulary.PieceType]
    private let index: VocabularyIndex
    private let normalizer: TextNormalizer
    private let encoder: BPEEncoder
    let decodeTable: DecodeTable
    private let specials: SpecialTokenMatcher
    /// With llama.cpp's semantics: the partition of plain text (user-defined pieces) and of text
    /// whose special tokens are parsed (user-defined, control and unknown pieces).
    private let llamaCpp: (plain: LlamaCppPartition, special: LlamaCppPartition, tokens: [String: Int])?

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
        if let problem = settings.idProblem(vocabularyCount: vocabulary.count) { throw .invalidVocabulary(problem) }
        self.settings = settings
        self.pieces = vocabulary.pieces
        self.types = vocabulary.types
        self.index = index
        normalizer = TextNormalizer(
            addDummyPrefix: settings.addDummyPrefix, removeExtraWhitespaces: settings.removeExtraWhitespaces,
            escapeWhitespaces: settings.escapeWhitespaces, userDefined: index.userDefined)
        encoder = BPEEncoder(vocab: index, llamaCpp: settings.semantics == .llamaCpp)
        decodeTable = DecodeTable(vocabulary, index: index, settings: settings)
        specials = SpecialTokenMatcher(vocabulary)
        llamaCpp = settings.semantics == .llamaCpp ? Self.llamaCppPartitions(vocabulary) : nil
    }

    /// llama.cpp matches user-defined pieces by their text as it has them, with real spaces
    /// (the model file writes them ▁ like SentencePiece), and control and unknown pieces as they are.
    private static func llamaCppPartitions(_ v: TokenizerVocabulary)
        -> (plain: LlamaCppPartition, special: LlamaCppPartition, tokens: [String: Int]) {
        var userDefined: [(bytes: [UInt8], id: Int32)] = [], special: [(bytes: [UInt8], id: Int32)] = []
        var tokens: [String: Int] = [:]
        for i in 0..<v.count {
            switch v.types[i] {
            case .userDefined:
                let text = v.pieces[i].unicodeScalars.map { $0 == "\u{2581}" ? " " : $0 }
                userDefined.append((Array(String(String.UnicodeScalarView(text)).utf8), Int32(i)))
            case .control, .unknown:
                special.append((Array(v.pieces[i].utf8), Int32(i)))
                if tokens[v.pieces[i]] == nil { tokens[v.pieces[i]] = i }
            default: break
            }
        }
        return (LlamaCppPartition(userDefined), LlamaCppPartition(userDefined + special), tokens)
    }

    /// Number of pieces. The model's embedding may have more rows; those ids decode to nothing.
    public var vocabularySize: Int { pieces.count }
    /// -1 when the model has no such piece.
    public var bosId: Int { settings.bosId }
    public var eosId: Int { settings.eosId }
    public var padId: Int { settings.padId }
    public var unknownId: Int { settings.unkId }
    /// `<end_of_turn>`, looked up by piece: nil when the vocabulary has none.
    public var endOfTurnId: Int? { id(of: "<end_of_turn>") }
    /// The tokens that end a reply: `<eos>`, and `<end_of_turn>` when the vocabulary has it.
    public var endTokens: [Int] { [eosId, endOfTurnId].compactMap { $0 }.filter { $0 >= 0 } }

    /// Control pieces recognised by `encode(_:parseSpecialTokens: true)`, by text: those written
    /// `<...>`; with llama.cpp's semantics every control piece and the unknown piece.
    public var specialTokens: [String: Int] { llamaCpp?.tokens ?? specials.tokens }

    /// Encodes plain text; no BOS is added. Control pieces are never produced, except with
    /// llama.cpp's semantics when BPE can merge smaller pieces into one's text, as llama.cpp does
    /// (in Gemma 3's vocabulary no control piece can be formed that way).
    public func encode(_ text: String) -> [Int] {
        var ids: [Int] = []
        var text = text
        text.withUTF8 { utf8 in
            if let llamaCpp { encodeLlamaCpp(utf8, llamaCpp.plain, into: &ids) } else { encodeText(utf8, into: &ids) }
        }
        return ids
    }

    /// With `parseSpecialTokens`, the text of control pieces (`<start_of_turn>`, `<bos>`, ...)
    /// becomes their ids, and each stretch of text between them is encoded as by `encode(_:)`.
    /// With llama.cpp's semantics that is llama.cpp's parse_special: every control piece and the
    /// unknown piece, matched together with the user-defined pieces, longest first.
    public func encode(_ text: String, parseSpecialTokens: Bool) -> [Int] {
        guard parseSpecialTokens else { return encode(text) }
        var ids: [Int] = []
        var text = text
        text.withUTF8 { utf8 in
            if let llamaCpp {
                encodeLlamaCpp(utf8, llamaCpp.special, into: &ids)
                return
            }
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

    /// llama.cpp's llama_vocab::impl::tokenize for a SentencePiece vocabulary: the raw text is
    /// partitioned; each stretch of text between pieces gets a ▁ first when the settings add a
    /// dummy prefix and it starts the text or follows a piece, has every space written ▁
    /// (llama.cpp neither removes extra whitespace nor keeps spaces), and is segmented by BPE.
    private func encodeLlamaCpp(_ utf8: UnsafeBufferPointer<UInt8>, _ partition: LlamaCppPartition,
                                into ids: inout [Int]) {
        var followsPiece = true
        var escaped: [UInt8] = []
        for segment in partition.split(utf8) {
            switch segment {
            case .piece(let id):
                ids.append(id)
                followsPiece = true
            case .text(let range):
                escaped.removeAll(keepingCapacity: true)
                if settings.addDummyPrefix && followsPiece { escaped += TextNormalizer.spaceSymbol }
                for b in utf8[range] {
                    if b == 0x20 { escaped += TextNormalizer.spaceSymbol } else { escaped.append(b) }
                }
                encoder.encode(normalized: escaped, into: &ids)
                followsPiece = false
            }
        }
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
