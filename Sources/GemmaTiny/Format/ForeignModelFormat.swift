import Foundation

/// The model formats people download, which `gemma-quantize` converts into a gemma-tiny file: a
/// runtime given one of them says so, with the command, rather than only "bad magic".
public enum ForeignModelFormat: String, Sendable, Equatable {
    case gguf
    case safetensors
    case huggingFaceFolder

    var name: String {
        switch self {
        case .gguf: return "a GGUF file"
        case .safetensors: return "a safetensors file"
        case .huggingFaceFolder: return "a Hugging Face checkpoint folder"
        }
    }

    /// The conversion, writing beside the source: `gemma-quantize SRC -o NAME.gtm`. A safetensors
    /// file is converted through its folder (config.json and the tokenizer live there).
    func conversionCommand(for path: String) -> String {
        let trimmed = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        let source = self == .safetensors ? (trimmed as NSString).deletingLastPathComponent : trimmed
        let input = source.isEmpty ? "." : source
        let output = self == .gguf ? (trimmed as NSString).deletingPathExtension : (input == "." ? "model" : input)
        return "gemma-quantize \(Self.shellQuoted(input)) -o \(Self.shellQuoted(output + ".gtm"))"
    }

    /// `path` as one shell word: as it is when it holds only safe characters, else single-quoted.
    static func shellQuoted(_ path: String) -> String {
        let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./+-@%:,=")
        if !path.isEmpty, path.allSatisfy(safe.contains) { return path }
        return "'" + path.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The format whose file starts with `bytes` (the first bytes of a file of `fileSize` bytes),
    /// if any: GGUF's magic, or safetensors' little-endian header length followed by its JSON.
    static func detect(_ bytes: UnsafeRawBufferPointer, fileSize: Int) -> ForeignModelFormat? {
        if bytes.count >= 4, Array(bytes[0..<4]) == Array("GGUF".utf8) { return .gguf }
        if bytes.count >= 9, bytes[8] == UInt8(ascii: "{") {
            var length: UInt64 = 0
            for i in (0..<8).reversed() { length = length << 8 | UInt64(bytes[i]) }
            if length >= 2, length <= UInt64(fileSize - 8) { return .safetensors }
        }
        return nil
    }

    /// A folder with a config.json: what `gemma-quantize` takes as a Hugging Face checkpoint.
    static func isCheckpointFolder(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
            && FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent("config.json"))
    }
}
