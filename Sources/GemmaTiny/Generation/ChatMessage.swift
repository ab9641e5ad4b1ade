/// Who wrote a chat message.
public enum ChatRole: String, Sendable, Hashable, Codable, CaseIterable {
    /// Instructions for the model. Gemma has no system role: see ``GemmaChatTemplate``.
    case system
    /// The person talking to the model.
    case user
    /// The model's earlier replies (Gemma's `model` turn).
    case assistant
}

/// One message of a conversation, for ``GemmaSession/chat(messages:options:)``.
public struct ChatMessage: Sendable, Hashable, Codable {
    public var role: ChatRole
    public var content: String

    public init(role: ChatRole, content: String) {
        self.role = role
        self.content = content
    }

    public static func system(_ content: String) -> ChatMessage { ChatMessage(role: .system, content: content) }
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: .user, content: content) }
    public static func assistant(_ content: String) -> ChatMessage { ChatMessage(role: .assistant, content: content) }
}
