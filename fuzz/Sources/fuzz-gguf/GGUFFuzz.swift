// Fuzz target: GGUF import (the converter's GGUF reader, then the Gemma configuration and
// SentencePiece vocabulary taken from its metadata, then a tokenizer built from that
// vocabulary). Each input is written to a scratch file in /dev/shm.
import Foundation
import FuzzSupport
@testable import GemmaConvert
import GemmaTiny

@main enum Main {
    static func main() { FuzzSupport.runLibFuzzer(fuzzGGUF) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGGUF(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    let path = FuzzSupport.scratchFile(UnsafeRawBufferPointer(start: data, count: size), name: "model.gguf")
    guard let file = try? GGUFFile(path: path) else { return 0 }
    for t in file.tensors {
        FuzzSupport.check(t.offset >= 0 && file.dataOffset + t.offset + t.byteCount <= size,
                          "tensor \(t.name) outside the \(size)-byte file")
        _ = file.bytes(t).first
    }
    _ = try? GGUFInspector.describe(path: path)
    // The configuration and vocabulary readers also run on files without a full tensor set.
    var notices: [String] = []
    if let arch = file.metadata["general.architecture"]?.string.flatMap(ModelArchitecture.init(rawValue:)) {
        _ = try? GGUFCheckpoint.config(file.metadata, architecture: arch, vocabSize: 2048, file: path)
    }
    if let (vocabulary, settings) = try? GGUFCheckpoint.vocabulary(file.metadata, file: path, notices: &notices),
       let tokenizer = try? Tokenizer(vocabulary: vocabulary, settings: settings) {
        FuzzSupport.exercise(tokenizer)
    }
    _ = try? GGUFCheckpoint(path: path)
    return 0
}
