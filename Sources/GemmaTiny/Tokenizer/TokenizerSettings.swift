/// SentencePiece settings that change how text is encoded.
public struct TokenizerSettings: Codable, Sendable, Equatable {
    /// Whose encoding rules the tokenizer follows (metadata key `semantics`, absent for SentencePiece).
    public enum Semantics: String, Codable, Sendable {
        /// The sentencepiece library's (a model converted from tokenizer.model).
        case sentencePiece = "sentencepiece"
        /// llama.cpp's SentencePiece tokenizer (`llm_tokenizer_spm` after `tokenizer_st_partition`),
        /// for a vocabulary imported from a GGUF file: user-defined pieces are matched on the raw
        /// text first, longest first, and BPE merges the text between them using every other
        /// piece, control pieces included (see docs/FORMAT.md, "Tokenizer").
        case llamaCpp = "llama.cpp"
    }

    /// "bpe" (Gemma) or "unigram" (refused by the runtime today).
    public var model: String
    public var bosId: Int
    public var eosId: Int
    public var padId: Int
    public var unkId: Int
    public var addDummyPrefix: Bool
    public var removeExtraWhitespaces: Bool
    public var escapeWhitespaces: Bool
    public var byteFallback: Bool
    /// Normalization rule name; Gemma uses "identity".
    public var normalizer: String
    public var semantics: Semantics

    enum CodingKeys: String, CodingKey {
        case model
        case bosId = "bos_id", eosId = "eos_id", padId = "pad_id", unkId = "unk_id"
        case addDummyPrefix = "add_dummy_prefix"
        case removeExtraWhitespaces = "remove_extra_whitespaces"
        case escapeWhitespaces = "escape_whitespaces"
        case byteFallback = "byte_fallback"
        case normalizer
        case semantics
    }

    public init(model: String, bosId: Int, eosId: Int, padId: Int, unkId: Int, addDummyPrefix: Bool,
                removeExtraWhitespaces: Bool, escapeWhitespaces: Bool, byteFallback: Bool, normalizer: String,
                semantics: Semantics = .sentencePiece) {
        self.model = model
        self.bosId = bosId
        self.eosId = eosId
        self.padId = padId
        self.unkId = unkId
        self.addDummyPrefix = addDummyPrefix
        self.removeExtraWhitespaces = removeExtraWhitespaces
        self.escapeWhitespaces = escapeWhitespaces
        self.byteFallback = byteFallback
        self.normalizer = normalizer
        self.semantics = semantics
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(String.self, forKey: .model)
        bosId = try c.decode(Int.self, forKey: .bosId)
        eosId = try c.decode(Int.self, forKey: .eosId)
        padId = try c.decode(Int.self, forKey: .padId)
        unkId = try c.decode(Int.self, forKey: .unkId)
        addDummyPrefix = try c.decode(Bool.self, forKey: .addDummyPrefix)
        removeExtraWhitespaces = try c.decode(Bool.self, forKey: .removeExtraWhitespaces)
        escapeWhitespaces = try c.decode(Bool.self, forKey: .escapeWhitespaces)
        byteFallback = try c.decode(Bool.self, forKey: .byteFallback)
        normalizer = try c.decode(String.self, forKey: .normalizer)
        semantics = try c.decodeIfPresent(Semantics.self, forKey: .semantics) ?? .sentencePiece
    }

    /// `semantics` is written only when it is not SentencePiece's, so such files are unchanged.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model)
        try c.encode(bosId, forKey: .bosId)
        try c.encode(eosId, forKey: .eosId)
        try c.encode(padId, forKey: .padId)
        try c.encode(unkId, forKey: .unkId)
        try c.encode(addDummyPrefix, forKey: .addDummyPrefix)
        try c.encode(removeExtraWhitespaces, forKey: .removeExtraWhitespaces)
        try c.encode(escapeWhitespaces, forKey: .escapeWhitespaces)
        try c.encode(byteFallback, forKey: .byteFallback)
        try c.encode(normalizer, forKey: .normalizer)
        if semantics != .sentencePiece { try c.encode(semantics, forKey: .semantics) }
    }

    /// The special ids SentencePiece accepts, as one rule for the converter, the model file and
    /// the tokenizer: bos, eos and pad name a piece or are -1 (none; every caller checks for it),
    /// unk names a piece. Nil when they are fine, else what is wrong.
    public func idProblem(vocabularyCount n: Int) -> String? {
        for (name, id) in [("bos_id", bosId), ("eos_id", eosId), ("pad_id", padId)] where !(id >= -1 && id < n) {
            return "\(name) \(id) is outside the vocabulary of \(n)"
        }
        guard (0..<n).contains(unkId) else { return "unk_id \(unkId) is outside the vocabulary of \(n)" }
        return nil
    }
}
