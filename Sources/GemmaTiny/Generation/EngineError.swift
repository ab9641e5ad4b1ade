/// Why the engine, a session or a generation failed. Every message is one line that names what
/// went wrong (the file, the limit, the option).
///
/// Generation streams throw these: `for try await event in session.generate(...)` ends with an
/// `EngineError` when the request cannot be served. A generation whose consuming task is
/// cancelled does not throw: its stream simply ends (``GemmaSession/completion(prompt:options:)``
/// and ``GemmaSession/chatCompletion(messages:options:)`` report that as ``cancelled``).
public enum EngineError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The model file cannot be opened or used (missing, corrupt, unsupported...).
    case modelLoad(path: String, ModelError)
    /// The file's tokenizer cannot be built.
    case tokenizer(TokenizerError)
    /// An engine, session or generation option is out of range (the message names it).
    case invalidOptions(String)
    /// The chat messages cannot be rendered (no messages...).
    case invalidMessages(String)
    /// The model's vocabulary lacks `<start_of_turn>` / `<end_of_turn>`, so it has no chat template.
    case noChatTemplate(missingToken: String)
    /// The prompt has no tokens.
    case emptyPrompt
    /// The prompt needs more positions than the session's context holds.
    case promptTooLong(tokens: Int, contextLength: Int)
    /// A prompt token id outside the vocabulary (only possible with `generate(tokens:)`).
    case tokenOutOfRange(token: Int, vocabularySize: Int)
    /// A session's KV cache cannot be made (context length out of range, out of memory).
    case sessionCreation(ModelError)
    /// The model failed while running (should not happen: the inputs are checked first).
    case inference(InferenceError)
    /// The generation was cancelled before it finished (reported by the collecting helpers).
    case cancelled
    /// The engine was shut down: it takes no new work and has cancelled what was running.
    case shutDown

    public var description: String {
        switch self {
        case .modelLoad(let path, let e): return "cannot load the model \(path): \(e.description)"
        case .tokenizer(let e): return e.description
        case .invalidOptions(let why): return "invalid options: \(why)"
        case .invalidMessages(let why): return "invalid chat messages: \(why)"
        case .noChatTemplate(let token):
            return "the model's vocabulary has no \(token) token, so it has no chat template"
        case .emptyPrompt: return "the prompt is empty"
        case .promptTooLong(let tokens, let ctx):
            return "the prompt is \(tokens) tokens, longer than the session's context (\(ctx) tokens)"
        case .tokenOutOfRange(let t, let v): return "token id \(t) is outside the vocabulary (0..<\(v))"
        case .sessionCreation(let e): return "cannot create a session: \(e.description)"
        case .inference(let e): return e.description
        case .cancelled: return "the generation was cancelled"
        case .shutDown: return "the engine is shut down"
        }
    }
}
