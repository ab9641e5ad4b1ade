/// Everything that can be wrong with a model file. Messages are one line and name the problem.
public enum ModelFileError: Error, Equatable, CustomStringConvertible, Sendable {
    case cannotOpen(path: String, reason: String)
    case notAModelFile(path: String)
    /// A model in a format `gemma-quantize` converts from (`ForeignModelFormat`).
    case foreignFormat(path: String, format: ForeignModelFormat)
    case unsupportedVersion(UInt32)
    case truncated(String)
    case corruptHeader(String)
    case invalidMetadata(String)
    /// The metadata names an architecture this build does not run (`ModelArchitecture`).
    case unsupportedArchitecture(String)
    case invalidTokenizer(String)
    case invalidTensorTable(String)
    case checksumMismatch(tensor: String)
    case missingTensor(String)
    case tensorShape(tensor: String, expected: [Int], found: [Int])
    case compressed(tensor: String)
    case decompression(tensor: String, reason: String)
    case io(String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason): return "cannot open \(path): \(reason)"
        case .notAModelFile(let path): return "\(path) is not a gemma-tiny model file (bad magic)"
        case .foreignFormat(let path, let format):
            return "\(path) is \(format.name), not a gemma-tiny model file; convert it once with: \(format.conversionCommand(for: path))"
        case .unsupportedVersion(let v): return "unsupported model file version \(v) (this build reads versions \(FileHeader.supportedVersions.lowerBound) to \(FileHeader.supportedVersions.upperBound))"
        case .truncated(let what): return "model file is truncated: \(what)"
        case .corruptHeader(let what): return "corrupt model file header: \(what)"
        case .invalidMetadata(let what): return "invalid model metadata: \(what)"
        case .unsupportedArchitecture(let name): return ConfigurationError.unsupportedArchitecture(name).description
        case .invalidTokenizer(let what): return "invalid tokenizer section: \(what)"
        case .invalidTensorTable(let what): return "invalid tensor table: \(what)"
        case .checksumMismatch(let name): return "checksum mismatch in tensor \(name): the file is corrupt"
        case .missingTensor(let name): return "model file has no tensor \(name)"
        case .tensorShape(let name, let expected, let found): return "tensor \(name) has shape \(found), expected \(expected)"
        case .compressed(let name): return "tensor \(name) is zstd-compressed; unpack the file before mapping it"
        case .decompression(let name, let reason): return "cannot decompress tensor \(name): \(reason)"
        case .io(let what): return what
        }
    }
}

extension ModelFileError {
    /// A configuration problem as the model file reports it: bad values are invalid metadata.
    public init(_ error: ConfigurationError) {
        switch error {
        case .invalid: self = .invalidMetadata(error.description)
        case .unsupportedArchitecture(let name): self = .unsupportedArchitecture(name)
        }
    }
}

extension ModelFileError {
    /// A mapping or writing failure as the model file reports it (an empty file is a truncated one).
    public init(_ error: FileAccessError) {
        switch error {
        case .cannotOpen(let path, let reason): self = .cannotOpen(path: path, reason: reason)
        case .empty: self = .truncated(error.description)
        case .io(let what): self = .io(what)
        }
    }
}
