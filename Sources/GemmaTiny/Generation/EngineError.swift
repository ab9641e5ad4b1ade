/// Why the engine, a session or a generation failed: the one error type of generation, thrown by
/// the engine (``GemmaEngine``, ``GemmaSession``) and by the command line's ``Generator`` and
/// ``ChatSession`` alike (``GenerationError`` is another name for it). Every message is one line
/// that names what went wrong (the file, the limit, the option).
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
    /// An engine, session or generation option is out of range (the message names it), or a
    /// response format that cannot be met.
    case invalidOptions(String)
    /// The chat messages cannot be rendered (no messages...).
    case invalidMessages(String)
    /// The model's vocabulary lacks `<start_of_turn>` / `<end_of_turn>`, so it has no chat template.
    case noChatTemplate(missingToken: String)
    /// The prompt has no tokens.
    case emptyPrompt
    /// The prompt needs more positions than the context holds. `available` is nil when the
    /// prompt is a whole one (the engine: only the session's context length counts) and the
    /// positions left when it continues a conversation kept in the cache (``Generator``).
    case promptTooLong(tokens: Int, available: Int? = nil, contextLength: Int)
    /// A session's KV cache cannot be made (context length out of range, out of memory).
    case sessionCreation(ModelError)
    /// The model refused its input or failed while running: a prompt token id outside the
    /// vocabulary (``tokenOutOfRange(token:vocabularySize:)``, only possible with token-id
    /// prompts); anything else is not expected, since inputs are checked first.
    case inference(InferenceError)
    /// The generation was cancelled before it finished (reported by the collecting helpers).
    case cancelled
    /// The engine was shut down: it takes no new work and has cancelled what was running.
    case shutDown

    /// A prompt token id outside the vocabulary: `.inference(.tokenOutOfRange(...))`.
    public static func tokenOutOfRange(token: Int, vocabularySize: Int) -> EngineError {
        .inference(.tokenOutOfRange(token: token, vocabularySize: vocabularySize))
    }

    public var description: String {
        switch self {
        case .modelLoad(let path, let e): return "cannot load the model \(path): \(e.description)"
        case .tokenizer(let e): return e.description
        case .invalidOptions(let why): return "invalid options: \(why)"
        case .invalidMessages(let why): return "invalid chat messages: \(why)"
        case .noChatTemplate(let token):
            return "the model's vocabulary has no \(token) token, so it has no chat template"
        case .emptyPrompt: return "the prompt is empty"
        case .promptTooLong(let tokens, nil, let ctx):
            return "the prompt is \(tokens) tokens, longer than the session's context (\(ctx) tokens)"
        case .promptTooLong(let tokens, let available?, let ctx):
            if available == ctx {
                return "the prompt is \(tokens) tokens, longer than the context (\(ctx) tokens)"
            }
            return "the prompt is \(tokens) tokens but only \(available) of the \(ctx)-token context are left"
        case .sessionCreation(let e): return "cannot create a session: \(e.description)"
        case .inference(let e): return e.description
        case .cancelled: return "the generation was cancelled"
        case .shutDown: return "the engine is shut down"
        }
    }
}

/// The error of ``Generator`` and ``ChatSession``: the same type as the engine's.
public typealias GenerationError = EngineError
