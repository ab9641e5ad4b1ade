import Foundation

/// The model formats people download, which `gemma-quantize` converts into a gemma-tiny file: a
/// runtime given one of them says so, with the command, rather than only "bad magic".
public enum ForeignModelFormat: Sendable, Equatable {
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

    /// The format of the whole `file`, if any: GGUF's magic, or safetensors' little-endian header
    /// length (one that fits the file) followed by its JSON.
    static func detect(_ file: UnsafeRawBufferPointer) -> ForeignModelFormat? {
        if file.count >= 4, Array(file[0..<4]) == Array("GGUF".utf8) { return .gguf }
        var r = ByteReader(file, context: "safetensors header")
        if let length = try? r.u64(), r.remaining > 0, file[8] == UInt8(ascii: "{"), length >= 2, length <= UInt64(r.remaining) {
            return .safetensors
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
