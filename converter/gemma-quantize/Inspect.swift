import ArgumentParser
import Foundation
import GemmaConvert
import GemmaTiny

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a model file's header, configuration and tensor table (or a GGUF file's metadata, and the configuration and tensors it converts to).")

    @Argument(help: "Model file (.gtm), or a GGUF file.")
    var file: String

    func run() throws {
        if FileManager.default.fileExists(atPath: file), Converter.isGGUF(path: file) {
            do { print(try GGUFInspector.describe(path: file)) } catch { throw fail(error) }
            return
        }
        let model: ModelFile
        do { model = try ModelFile(path: file) } catch { throw fail(error) }
        let h = model.header
        print("file: \(file) (\(model.fileSize) bytes)")
        print("format version: \(h.version)")
        print("sections: metadata \(h.metadata), tokenizer \(h.tokenizer), tensor table \(h.tensorTable), data \(h.data)")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        if let json = try? encoder.encode(model.metadata) { print("metadata: " + String(decoding: json, as: UTF8.self)) }
        print("tokenizer: \(model.vocabulary.count) pieces")
        print("tensors: \(model.tensors.count)")
        print("name".padding(toLength: 48, withPad: " ", startingAt: 0) + " type  shape            offset       stored       length       zstd checksum")
        for t in model.tensors {
            let shape = t.shape.map(String.init).joined(separator: "x")
            print(t.name.padding(toLength: 48, withPad: " ", startingAt: 0) + " "
                  + t.type.description.padding(toLength: 5, withPad: " ", startingAt: 0) + " "
                  + shape.padding(toLength: 16, withPad: " ", startingAt: 0) + " "
                  + String(t.offset).padding(toLength: 12, withPad: " ", startingAt: 0) + " "
                  + String(t.storedLength).padding(toLength: 12, withPad: " ", startingAt: 0) + " "
                  + String(t.length).padding(toLength: 12, withPad: " ", startingAt: 0) + " "
                  + (t.compression == .zstd ? "yes " : "no  ") + " " + String(t.checksum, radix: 16))
        }
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check every tensor checksum of a model file.")

    @Argument(help: "Model file.")
    var file: String

    func run() throws {
        do {
            let model = try ModelFile(path: file)
            try model.verify()
            print("ok: \(file): header and \(model.tensors.count) tensor checksums verified")
        } catch { throw fail(error) }
    }
}
