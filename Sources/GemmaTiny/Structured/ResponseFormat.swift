/// The shape a reply must have, as OpenAI's `response_format`.
///
/// `.jsonObject` and `.jsonSchema` are enforced by constrained decoding: at each step, tokens
/// that cannot continue a valid prefix of the reply are masked out before sampling
/// (``JSONConstraint``), so a reply that ends by itself is always valid. A reply cut short by
/// `maxTokens` or the end of the context stops with ``StopReason/maxTokens`` /
/// ``StopReason/contextFull`` and is then an unfinished prefix.
public enum ResponseFormat: Sendable, Equatable {
    /// Free text.
    case text
    /// One JSON object (any keys, any values).
    case jsonObject
    /// One JSON value that validates against this JSON Schema (the schema's JSON text). See
    /// ``JSONSchemaCompiler`` for the keywords supported.
    case jsonSchema(String)
}
