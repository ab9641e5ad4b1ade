/// A multi-turn conversation with Gemma's chat template:
///
///     <bos><start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n{reply}<end_of_turn>\n
///     <start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n...
///
/// The KV cache is kept between turns: each turn only feeds its own tokens. The user's text is
/// encoded as plain text (a `<start_of_turn>` typed by the user stays text), in the same
/// segments as transformers' chat template produces: `user\n{text}`, `\n`, `model\n`, with the
/// control tokens between them.
public final class ChatSession {
    public let generator: Generator
    public let startOfTurnId: Int
    public let endOfTurnId: Int
    public private(set) var turnCount = 0

    public enum ChatError: Error, Equatable, CustomStringConvertible, Sendable {
        case missingControlToken(String)
        public var description: String {
            switch self {
            case .missingControlToken(let piece):
                return "the model's vocabulary has no \(piece) token, so it has no chat template"
            }
        }
    }

    public init(generator: Generator) throws(ChatError) {
        guard let sot = generator.tokenizer.id(of: "<start_of_turn>") else { throw .missingControlToken("<start_of_turn>") }
        guard let eot = generator.tokenizer.id(of: "<end_of_turn>") else { throw .missingControlToken("<end_of_turn>") }
        self.generator = generator
        startOfTurnId = sot
        endOfTurnId = eot
    }

    /// Starts a new conversation.
    public func reset() {
        generator.reset()
        turnCount = 0
    }

    /// The tokens a user turn appends: the end of the previous reply (`<end_of_turn>\n`) when
    /// there is one, `<bos>` at the very start, then the user turn and the model turn's header.
    public func turnTokens(user text: String) -> [Int] {
        let tok = generator.tokenizer
        var ids: [Int] = []
        if generator.history.isEmpty && generator.pendingToken == nil {
            if tok.bosId >= 0 { ids.append(tok.bosId) }
        } else {
            ids.append(endOfTurnId)
            ids += tok.encode("\n")
        }
        ids.append(startOfTurnId)
        ids += tok.encode("user\n" + text)
        ids.append(endOfTurnId)
        ids += tok.encode("\n")
        ids.append(startOfTurnId)
        ids += tok.encode("model\n")
        return ids
    }

    /// Sends one user message and generates the model's reply. If `shouldStop` cancels it while
    /// the message is still being processed, the conversation is left as it was. A reply that ended with
    /// `<end_of_turn>` or `<eos>` is closed by the next turn's `<end_of_turn>\n`; one cut short
    /// (max tokens, stop string, Ctrl-C) keeps its last token and is closed the same way.
    @discardableResult
    public func send(_ text: String, options: GenerationOptions, shouldStop: () -> Bool = { false },
                     onText: (String) -> Void = { _ in }) throws(GenerationError) -> GenerationResult {
        let drop = generator.pendingToken.map { $0 == endOfTurnId || $0 == generator.eosId } ?? false
        let ids = turnTokens(user: text)
        let before = generator.history.count
        let result = try generator.generate(prompt: ids, options: options, dropPendingToken: drop,
                                            shouldStop: shouldStop, onText: onText)
        // A turn cancelled during prompt processing is rolled back entirely.
        if generator.history.count > before { turnCount += 1 }
        return result
    }
}
