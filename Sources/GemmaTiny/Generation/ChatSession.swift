/// A multi-turn conversation with Gemma's chat template (``GemmaChatTemplate``), one turn at a
/// time:
///
///     <bos><start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n{reply}<end_of_turn>\n
///     <start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n...
///
/// The KV cache is kept between turns: each turn only feeds its own tokens. The tokens are the
/// ones ``GemmaChatTemplate/tokens(for:tokenizer:)`` gives for the whole conversation (the
/// user's text is plain text: a `<start_of_turn>` typed by the user stays text).
public final class ChatSession {
    public let generator: Generator
    public let startOfTurnId: Int
    public let endOfTurnId: Int
    public private(set) var turnCount = 0
    private let template: GemmaChatTemplate.Writer

    /// The error of `init`: ``EngineError/noChatTemplate(missingToken:)``.
    public typealias ChatError = EngineError

    public init(generator: Generator) throws(ChatError) {
        template = try GemmaChatTemplate.Writer(tokenizer: generator.tokenizer)
        self.generator = generator
        startOfTurnId = template.startOfTurn
        endOfTurnId = template.endOfTurn
    }

    /// Starts a new conversation.
    public func reset() {
        generator.reset()
        turnCount = 0
    }

    /// The tokens a user turn appends: the end of the previous reply (`<end_of_turn>\n`) when
    /// there is one, `<bos>` at the very start, then the user turn and the model turn's header.
    public func turnTokens(user text: String) -> [Int] {
        var writer = template
        if generator.history.isEmpty && generator.pendingToken == nil {
            writer.begin()
        } else {
            writer.closeTurn()
        }
        writer.openTurn(user: true, text: text)
        writer.closeTurn()
        writer.openTurn(user: false, text: "")
        return writer.ids
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
        let before = generator.session.position
        let result = try generator.generate(prompt: ids, options: options, dropPendingToken: drop,
                                            shouldStop: shouldStop, onText: onText)
        // A turn cancelled during prompt processing is rolled back entirely.
        if generator.session.position > before { turnCount += 1 }
        return result
    }
}
