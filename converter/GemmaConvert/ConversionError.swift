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
    /// A malformed or unsupported GGUF file.
    case invalidGGUF(file: String, reason: String)
    /// A GGUF tensor stored in a type the importer cannot dequantize.
    case unsupportedGGUFType(file: String, tensor: String, type: String)

    public var description: String {
        switch self {
        case .missingFile(let path): return "\(path): no such file"
        case .invalidConfig(let file, let reason): return "\(file): \(reason)"
        case .unsupportedArchitecture(let arch):
            return "unsupported architecture \(arch): this version converts GemmaForCausalLM, Gemma2ForCausalLM and Gemma3ForCausalLM (text) checkpoints, and GGUF files of the gemma, gemma2 and gemma3 architectures"
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
        case .invalidGGUF(let file, let reason): return "\(file): \(reason)"
        case .unsupportedGGUFType(let file, let tensor, let type):
            return "\(file): tensor \(tensor) is stored as \(type), which this importer cannot dequantize (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K are supported)"
        }
    }
}
