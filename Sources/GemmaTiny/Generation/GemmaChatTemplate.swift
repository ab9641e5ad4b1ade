/// Gemma's chat template, applied by ``GemmaSession/chat(messages:options:)`` to a whole
/// conversation and by ``ChatSession`` one turn at a time (the only place that knows it):
///
///     <bos><start_of_turn>user
///     {system}
///
///     {user}<end_of_turn>
///     <start_of_turn>model
///     {assistant}<end_of_turn>
///     <start_of_turn>user
///     {user}<end_of_turn>
///     <start_of_turn>model
///
/// - Gemma has no system role. System messages are folded into the next user turn, as the
///   Gemma 3 template does: their text, then a blank line (`"\n\n"`), then the user's text.
///   Several system messages are joined with blank lines; system messages after the last user
///   message become a user turn of their own.
/// - `assistant` messages are Gemma's `model` turns.
/// - The prompt ends with the header of a new model turn (`<start_of_turn>model\n`), so the
///   model writes the next reply, which it ends with `<end_of_turn>`. When the last message is
///   an assistant message, its turn is left open instead: the model continues that text.
/// - Message text is encoded as plain text: a `<start_of_turn>` typed by a user stays text and
///   cannot forge a turn. Control tokens are placed by id, and the text between them is encoded
///   in the same segments as transformers' `apply_chat_template` produces (`user\n{text}`,
///   `\n`, `model\n`), so token ids match the reference.
public enum GemmaChatTemplate {
    /// One turn after folding system messages.
    struct Turn: Equatable {
        var isUser: Bool
        var text: String
    }

    static func turns(_ messages: [ChatMessage]) throws(EngineError) -> [Turn] {
        guard !messages.isEmpty else { throw .invalidMessages("there are no messages") }
        var turns: [Turn] = []
        var system: [String] = []
        for m in messages {
            switch m.role {
            case .system:
                system.append(m.content)
            case .user:
                let prefix = system.isEmpty ? "" : system.joined(separator: "\n\n") + "\n\n"
                system.removeAll()
                turns.append(Turn(isUser: true, text: prefix + m.content))
            case .assistant:
                turns.append(Turn(isUser: false, text: m.content))
            }
        }
        if !system.isEmpty { turns.append(Turn(isUser: true, text: system.joined(separator: "\n\n"))) }
        return turns
    }

    /// The prompt as text, control tokens written out (for logs and documentation; generation
    /// uses ``tokens(for:tokenizer:)``, which never parses control tokens out of message text).
    public static func render(_ messages: [ChatMessage]) throws(EngineError) -> String {
        let turns = try turns(messages)
        var s = "<bos>"
        for (i, t) in turns.enumerated() {
            let open = !t.isUser && i == turns.count - 1
            s += "<start_of_turn>" + (t.isUser ? "user\n" : "model\n") + t.text
            if !open { s += "<end_of_turn>\n" }
        }
        if turns.last?.isUser ?? true { s += "<start_of_turn>model\n" }
        return s
    }

    /// The prompt's token ids, `<bos>` first.
    public static func tokens(for messages: [ChatMessage], tokenizer: Tokenizer) throws(EngineError) -> [Int] {
        var writer = try Writer(tokenizer: tokenizer)
        let turns = try turns(messages)
        writer.begin()
        for (i, t) in turns.enumerated() {
            writer.openTurn(user: t.isUser, text: t.text)
            // The last message, when it is the model's, is left open: the model continues it.
            if t.isUser || i < turns.count - 1 { writer.closeTurn() }
        }
        if turns.last?.isUser ?? true { writer.openTurn(user: false, text: "") }
        return writer.ids
    }

    /// Writes the template's tokens: control tokens by id, the text between them encoded in
    /// the segments transformers' template produces (`user\n{text}`, `\n`, `model\n`).
    struct Writer {
        let tokenizer: Tokenizer
        let startOfTurn: Int
        let endOfTurn: Int
        private let newline: [Int]
        private(set) var ids: [Int] = []

        init(tokenizer: Tokenizer) throws(EngineError) {
            guard let sot = tokenizer.id(of: "<start_of_turn>") else { throw .noChatTemplate(missingToken: "<start_of_turn>") }
            guard let eot = tokenizer.endOfTurnId else { throw .noChatTemplate(missingToken: "<end_of_turn>") }
            self.tokenizer = tokenizer
            startOfTurn = sot
            endOfTurn = eot
            newline = tokenizer.encode("\n")
        }

        /// `<bos>`: the start of a conversation.
        mutating func begin() {
            if tokenizer.bosId >= 0 { ids.append(tokenizer.bosId) }
        }

        /// `<start_of_turn>user\n{text}` or `<start_of_turn>model\n{text}`.
        mutating func openTurn(user: Bool, text: String) {
            ids.append(startOfTurn)
            ids += tokenizer.encode((user ? "user\n" : "model\n") + text)
        }

        /// `<end_of_turn>\n`.
        mutating func closeTurn() {
            ids.append(endOfTurn)
            ids += newline
        }
    }
}
