/// What can be wrong with a model configuration, wherever it came from (a model file's metadata,
/// a Hugging Face config.json, a GGUF header). Each reader words it in its own terms: the model
/// file as `ModelFileError.invalidMetadata` / `.unsupportedArchitecture`, the converter as a
/// problem of its input.
public enum ConfigurationError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A value out of range or inconsistent with another one.
    case invalid(String)
    /// An architecture name this build does not run, e.g. from a newer model file.
    case unsupportedArchitecture(String)

    public var description: String {
        switch self {
        case .invalid(let why): return "config: \(why)"
        case .unsupportedArchitecture(let name): return ModelArchitecture.unsupportedMessage(name)
        }
    }
}
