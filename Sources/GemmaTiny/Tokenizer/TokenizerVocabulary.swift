/// The SentencePiece vocabulary as stored in the model file: everything the tokenizer needs,
/// so tokenizer.model is not needed at run time.
public struct TokenizerVocabulary: Sendable, Equatable {
    /// SentencePiece's piece types (the same numbers GGUF uses).
    public enum PieceType: UInt8, Sendable {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    public var pieces: [String]
    public var scores: [Float]
    public var types: [PieceType]

    public init(pieces: [String], scores: [Float], types: [PieceType]) {
        self.pieces = pieces
        self.scores = scores
        self.types = types
    }

    public var count: Int { pieces.count }
}
