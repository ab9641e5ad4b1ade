/// Why a conversion failed. Each message is one line naming the file and the problem.
public enum ConversionError: Error, CustomStringConvertible, Sendable {
    case missingFile(String)
    case invalidConfig(file: String, reason: String)
    case unsupportedArchitecture(String)
    case invalidSafetensors(file: String, reason: String)
    case unsupportedDtype(file: String, tensor: String, dtype: String)
    case missingTensor(String)
    case unexpectedTensor(String)
    case shapeMismatch(tensor: String, expected: [Int], found: [Int])
    case nonFiniteWeight(tensor: String, index: Int)
    case invalidTokenizer(file: String, reason: String)
    case output(String)
    case invalidOption(String)

    public var description: String {
        switch self {
        case .missingFile(let path): return "\(path): no such file"
        case .invalidConfig(let file, let reason): return "\(file): \(reason)"
        case .unsupportedArchitecture(let arch):
            return "unsupported architecture \(arch): this version converts GemmaForCausalLM (Gemma 1) checkpoints"
        case .invalidSafetensors(let file, let reason): return "\(file): \(reason)"
        case .unsupportedDtype(let file, let tensor, let dtype):
            return "\(file): tensor \(tensor) has unsupported dtype \(dtype) (BF16, F16 and F32 are supported)"
        case .missingTensor(let name): return "checkpoint has no tensor \(name)"
        case .unexpectedTensor(let name): return "checkpoint has an unexpected tensor \(name)"
        case .shapeMismatch(let name, let expected, let found):
            return "tensor \(name) has shape \(found) but config.json implies \(expected)"
        case .nonFiniteWeight(let name, let index): return "tensor \(name) has a NaN or infinite value at element \(index)"
        case .invalidTokenizer(let file, let reason): return "\(file): \(reason)"
        case .output(let message): return message
        case .invalidOption(let message): return message
        }
    }
}
