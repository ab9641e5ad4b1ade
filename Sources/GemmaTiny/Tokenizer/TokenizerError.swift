/// Why a vocabulary and settings cannot make a tokenizer. Messages are one line.
public enum TokenizerError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The settings ask for something this tokenizer does not implement (e.g. a unigram model).
    case unsupported(String)
    /// The vocabulary breaks a rule SentencePiece itself enforces when loading a model.
    case invalidVocabulary(String)

    public var description: String {
        switch self {
        case .unsupported(let what): return "unsupported tokenizer: \(what)"
        case .invalidVocabulary(let what): return "invalid tokenizer vocabulary: \(what)"
        }
    }
}
