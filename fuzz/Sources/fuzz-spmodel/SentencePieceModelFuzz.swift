// Fuzz target: the converter's SentencePiece tokenizer.model reader (protobuf), then a
// tokenizer built from what it accepts.
import FuzzSupport
import GemmaConvert
import GemmaTiny

@main enum Main {
    static func main() { FuzzSupport.runLibFuzzer(fuzzSentencePieceModel) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSentencePieceModel(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let (vocabulary, settings) = try? SentencePieceModelReader.read(bytes: bytes) else { return 0 }
    FuzzSupport.check(vocabulary.scores.count == vocabulary.count && vocabulary.types.count == vocabulary.count,
                      "vocabulary arrays disagree")
    if let tokenizer = try? Tokenizer(vocabulary: vocabulary, settings: settings) {
        FuzzSupport.exercise(tokenizer)
    }
    return 0
}
