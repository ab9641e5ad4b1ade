// Fuzz target: the tokenizer of the tiny fixture model (fixtures/tiny-gemma/tokenizer.model,
// read through the converter's SentencePiece reader).
//
// First input byte even: the rest is text (String(decoding:as: UTF8.self), so invalid UTF-8
// becomes U+FFFD as it does for any prompt). Checked: ids in the vocabulary, no control ids
// from plain encoding, decode(encode(s)) == s byte for byte with each U+2581 (▁) turned into a
// space, as SentencePiece decodes it (Gemma's settings: identity normalizer, no dummy prefix,
// no whitespace removal, byte fallback: otherwise lossless; checked before asserting), the streaming
// decoder agrees with decode, and parsing special tokens yields ids in range.
// The same text also goes through the same vocabulary imported from GGUF (llama.cpp's semantics):
// ids in range, any control or unknown id in plain encoding comes from its own text in the input
// (llama.cpp's BPE may form one; otherwise decode(encode(s)) == s as above), streaming agrees,
// parsing special tokens yields ids in range.
// First byte odd: the rest is a sequence of little-endian 16-bit ids (offset by -8, so negative
// and out-of-range ids occur): decode and streaming decode agree, and re-encoding the decoded
// text decodes to the same text.
import FuzzSupport
import GemmaTiny

let tokenizer = FuzzSupport.fixtureTokenizer()
let ggufTokenizer = FuzzSupport.fixtureTokenizerFromGGUF()

@main enum Main {
    static func main() { FuzzSupport.runLibFuzzer(fuzzTokenizer) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokenizer(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    guard size > 0 else { return 0 }
    let input = UnsafeBufferPointer(start: data + 1, count: size - 1)
    if data[0] & 1 == 0 {
        let text = String(decoding: input, as: UTF8.self)
        let ids = tokenizer.encode(text)
        for id in ids {
            FuzzSupport.check(id >= 0 && id < tokenizer.vocabularySize, "id \(id) outside the vocabulary")
            FuzzSupport.check(!tokenizer.isControl(id), "plain encoding produced control id \(id)")
        }
        let decoded = tokenizer.decode(ids)
        FuzzSupport.check(Array(decoded.utf8) == spaceSymbolsAsSpaces(Array(text.utf8)),
                          "decode(encode(s)) != s: \(Array(text.utf8)) -> \(ids) -> \(Array(decoded.utf8))")
        checkStreaming(ids, decoded)
        let parsed = tokenizer.encode(text, parseSpecialTokens: true)
        for id in parsed { FuzzSupport.check(id >= 0 && id < tokenizer.vocabularySize, "id \(id) outside the vocabulary") }
        checkStreaming(parsed, tokenizer.decode(parsed))

        let llamaCpp = ggufTokenizer.encode(text)
        var formed = false
        for id in llamaCpp {
            FuzzSupport.check(id >= 0 && id < ggufTokenizer.vocabularySize, "id \(id) outside the vocabulary (llama.cpp semantics)")
            if ggufTokenizer.isControl(id) || ggufTokenizer.pieceType(id) == .unknown {
                FuzzSupport.check(text.contains(ggufTokenizer.piece(id)!), "plain encoding produced control id \(id) without its text")
                formed = true
            }
        }
        let llamaCppDecoded = ggufTokenizer.decode(llamaCpp)
        if !formed {
            FuzzSupport.check(Array(llamaCppDecoded.utf8) == spaceSymbolsAsSpaces(Array(text.utf8)),
                              "decode(encode(s)) != s (llama.cpp semantics): \(Array(text.utf8)) -> \(llamaCpp) -> \(Array(llamaCppDecoded.utf8))")
        }
        checkStreaming(llamaCpp, llamaCppDecoded, ggufTokenizer)
        let llamaCppParsed = ggufTokenizer.encode(text, parseSpecialTokens: true)
        for id in llamaCppParsed { FuzzSupport.check(id >= 0 && id < ggufTokenizer.vocabularySize, "id \(id) outside the vocabulary") }
    } else {
        var ids: [Int] = []
        var i = 0
        while i + 1 < input.count {
            ids.append(Int(UInt16(input[i]) | UInt16(input[i + 1]) << 8) % (tokenizer.vocabularySize + 16) - 8)
            i += 2
        }
        let decoded = tokenizer.decode(ids)
        checkStreaming(ids, decoded)
        let again = tokenizer.decode(tokenizer.encode(decoded))
        FuzzSupport.check(Array(again.utf8) == Array(decoded.utf8), "decode(encode(decode(ids))) != decode(ids) for \(ids)")
    }
    return 0
}

/// SentencePiece escapes spaces as U+2581 (▁) and decodes every ▁ as a space, so a ▁ typed in
/// the text comes back as a space: the one way decode(encode(s)) differs from s.
func spaceSymbolsAsSpaces(_ s: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(s.count)
    var i = 0
    while i < s.count {
        if i + 2 < s.count, s[i] == 0xE2, s[i + 1] == 0x96, s[i + 2] == 0x81 {
            out.append(0x20)
            i += 3
        } else {
            out.append(s[i])
            i += 1
        }
    }
    return out
}

func checkStreaming(_ ids: [Int], _ decoded: String, _ tokenizer: Tokenizer = tokenizer) {
    var streaming = tokenizer.makeStreamingDecoder()
    var text = ""
    for id in ids { text += streaming.append(id) }
    text += streaming.finish()
    FuzzSupport.check(Array(text.utf8) == Array(decoded.utf8), "streaming decode differs from decode for \(ids)")
}
