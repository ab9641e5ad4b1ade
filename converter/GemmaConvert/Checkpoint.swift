import Foundation
import GemmaTiny

/// A Hugging Face checkpoint folder: config.json, tokenizer.model and one or more safetensors
/// files (single `model.safetensors`, or shards listed in `model.safetensors.index.json`).
struct Checkpoint {
    let folder: String
    let config: HFConfig.Parsed
    let files: [SafetensorsFile]
    /// Every tensor by name, with the file holding it.
    let tensors: [String: (file: SafetensorsFile, tensor: SafetensorsFile.Tensor)]
    let tokenizerPath: String

    init(folder: String) throws(ConversionError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) else { throw .missingFile(folder) }
        guard isDirectory.boolValue else {
            throw .invalidOption("\(folder) is not a folder: give the checkpoint folder (config.json, *.safetensors, tokenizer.model)")
        }
        self.folder = folder
        config = try HFConfig.read(path: "\(folder)/config.json")
        tokenizerPath = "\(folder)/tokenizer.model"
        guard FileManager.default.fileExists(atPath: tokenizerPath) else { throw .missingFile(tokenizerPath) }

        var files: [SafetensorsFile] = []
        let single = "\(folder)/model.safetensors"
        let indexPath = "\(folder)/model.safetensors.index.json"
        var expectedLocation: [String: String] = [:]
        if FileManager.default.fileExists(atPath: single) {
            files = [try SafetensorsFile(path: single)]
        } else if FileManager.default.fileExists(atPath: indexPath) {
            guard let data = FileManager.default.contents(atPath: indexPath),
                  let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let weightMap = json["weight_map"] as? [String: String] else {
                throw .invalidSafetensors(file: indexPath, reason: "not a safetensors index (no weight_map)")
            }
            for shard in Set(weightMap.values).sorted() {
                guard !shard.contains("/") else { throw .invalidSafetensors(file: indexPath, reason: "shard name \(shard) is a path") }
                files.append(try SafetensorsFile(path: "\(folder)/\(shard)"))
            }
            expectedLocation = weightMap.mapValues { "\(folder)/\($0)" }
        } else {
            throw .missingFile("\(single) (or model.safetensors.index.json)")
        }
        var tensors: [String: (file: SafetensorsFile, tensor: SafetensorsFile.Tensor)] = [:]
        for file in files {
            for (name, t) in file.tensors {
                if let other = tensors[name] {
                    throw .invalidSafetensors(file: file.path, reason: "tensor \(name) also appears in \(other.file.path)")
                }
                tensors[name] = (file, t)
            }
        }
        for (name, path) in expectedLocation where tensors[name]?.file.path != path {
            throw .invalidSafetensors(file: path, reason: "index lists tensor \(name) but the shard does not hold it")
        }
        self.files = files
        self.tensors = tensors
    }

    /// Every file the conversion reads (which it must never overwrite).
    var inputPaths: [String] {
        files.map(\.path) + ["config.json", "tokenizer.model", "model.safetensors.index.json"].map { "\(folder)/\($0)" }
    }

    var sourceFiles: [Provenance.SourceFile] {
        var list = files.map { Provenance.SourceFile(name: ($0.path as NSString).lastPathComponent, size: $0.fileSize) }
        for name in ["config.json", "tokenizer.model"] {
            let size = (try? FileManager.default.attributesOfItem(atPath: "\(folder)/\(name)")[.size] as? Int) ?? 0
            list.append(.init(name: name, size: size))
        }
        return list
    }
}
