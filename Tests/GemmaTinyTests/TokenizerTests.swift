import Foundation
import GemmaConvert
import GemmaTiny
import XCTest

/// Encoding and decoding against sentencepiece's own results on the committed corpus
/// (fixtures/goldens/tokenizer-corpus.json, made from fixtures/tokenizer/tokenizer.model).
final class TokenizerTests: XCTestCase {
    func testEncodeMatchesSentencePieceOnCorpus() throws {
        let tokenizer = try TokenizerFixtures.tokenizer()
        let corpus = try TokenizerFixtures.corpus()
        XCTAssertEqual(corpus.vocab_size, tokenizer.vocabularySize)
        XCTAssertGreaterThan(corpus.cases.count, 2000)
        var failures = 0
        for c in corpus.cases {
            let ids = tokenizer.encode(c.text)
            if ids != c.ids {
                failures += 1
                if failures <= 10 {
                    XCTFail("[\(c.category)] \(c.text.debugDescription): got \(ids), sentencepiece \(c.ids) \(c.pieces)")
                }
            }
            // The ids are those of the pieces sentencepiece reports.
            if failures == 0 { XCTAssertEqual(ids.map { tokenizer.piece($0) ?? "?" }, c.pieces) }
        }
        XCTAssertEqual(failures, 0, "\(failures) of \(corpus.cases.count) strings differ")
        print("tokenizer corpus: \(corpus.cases.count - failures) of \(corpus.cases.count) strings encode identically")
    }

    func testDecodeMatchesSentencePieceOnCorpus() throws {
        let tokenizer = try TokenizerFixtures.tokenizer()
        let corpus = try TokenizerFixtures.corpus()
        for c in corpus.cases {
            XCTAssertSameText(tokenizer.decode(c.ids), c.decoded, "[\(c.category)]")
        }
    }

    func testDecodeOfRandomByteRunsMatchesSentencePiece() throws {
        // Mostly byte pieces, many of them invalid UTF-8: each bad byte becomes one U+FFFD.
        let tokenizer = try TokenizerFixtures.tokenizer()
        let cases = try TokenizerFixtures.variants().decode_cases
        XCTAssertGreaterThan(cases.count, 100)
        for c in cases {
            XCTAssertSameText(tokenizer.decode(c.ids), c.decoded, "ids \(c.ids)")
        }
    }

    func testInvalidUTF8BecomesOneReplacementPerByte() throws {
        let t = try TokenizerFixtures.tokenizer()
        func bytes(_ b: [UInt8]) -> [Int] { b.map { t.id(of: String(format: "<0x%02X>", $0))! } }
        XCTAssertSameText(t.decode(bytes([0xE2, 0x82, 0xAC])), "€")
        // Truncated 3-byte sequence then "A": sentencepiece gives two U+FFFD (Swift would give one).
        XCTAssertSameText(t.decode(bytes([0xE2, 0x82, 0x41])), "\u{FFFD}\u{FFFD}A")
        XCTAssertSameText(t.decode(bytes([0xC0, 0x80])), "\u{FFFD}\u{FFFD}")  // overlong
        XCTAssertSameText(t.decode(bytes([0xED, 0xA0, 0x80])), "\u{FFFD}\u{FFFD}\u{FFFD}")  // surrogate
        XCTAssertSameText(t.decode(bytes([0xF4, 0x90, 0x80, 0x80])), "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}")
        // A byte run is cut by a normal piece.
        XCTAssertSameText(t.decode(bytes([0xE2, 0x82]) + t.encode("a") + bytes([0xAC])), "\u{FFFD}\u{FFFD}a\u{FFFD}")
    }

    func testOutOfRangeIdsDecodeToNothing() throws {
        let t = try TokenizerFixtures.tokenizer()
        let hello = t.encode("héllo wörld")
        let noisy = [-1, t.vocabularySize, 256_000] + hello + [t.vocabularySize + 5, Int.max, Int.min]
        XCTAssertSameText(t.decode(noisy), "héllo wörld")
        var stream = t.makeStreamingDecoder()
        XCTAssertEqual(stream.append(t.vocabularySize), "")
        XCTAssertEqual(stream.append(-7), "")
        XCTAssertNil(t.piece(t.vocabularySize))
        XCTAssertNil(t.piece(-1))
        XCTAssertNil(t.pieceType(t.vocabularySize))
        XCTAssertFalse(t.isControl(t.vocabularySize))
        // Out-of-range ids do not interrupt a byte run.
        let euro = "€".utf8.map { t.id(of: String(format: "<0x%02X>", $0))! }
        XCTAssertSameText(t.decode([euro[0], 999_999, euro[1], euro[2]]), "€")
    }

    func testControlAndUnknownPiecesDecode() throws {
        let t = try TokenizerFixtures.tokenizer()
        let hi = t.encode("hi")
        XCTAssertSameText(t.decode([t.bosId] + hi + [t.eosId, t.padId]), "hi")
        XCTAssertSameText(t.decode(hi + [t.unknownId] + hi), "hi \u{2047} hi")  // sentencepiece's unk surface
    }

    func testIdsAndPieces() throws {
        let t = try TokenizerFixtures.tokenizer()
        XCTAssertEqual(t.vocabularySize, 2048)
        XCTAssertEqual([t.padId, t.eosId, t.bosId, t.unknownId], [0, 1, 2, 3])
        XCTAssertEqual(t.id(of: "<bos>"), 2)
        XCTAssertEqual(t.id(of: "<start_of_turn>"), 4)
        XCTAssertEqual(t.id(of: "<end_of_turn>"), 5)
        XCTAssertEqual(t.id(of: "<0x41>"), 26 + 0x41)
        XCTAssertEqual(t.id(of: "\n"), 6)
        XCTAssertNil(t.id(of: "no such piece"))
        XCTAssertNil(t.id(of: ""))
        XCTAssertEqual(t.piece(2), "<bos>")
        XCTAssertEqual(t.pieceType(3), .unknown)
        XCTAssertTrue(t.isControl(t.bosId))
        XCTAssertFalse(t.isControl(t.unknownId))
        for id in 0..<t.vocabularySize { XCTAssertEqual(t.id(of: t.piece(id)!), id) }
    }

    func testPlainEncodingNeverProducesControlIds() throws {
        let t = try TokenizerFixtures.tokenizer()
        let ids = t.encode("<bos><start_of_turn>user\n<end_of_turn><eos><pad>")
        XCTAssertFalse(ids.contains { t.isControl($0) })
        XCTAssertSameText(t.decode(ids), "<bos><start_of_turn>user\n<end_of_turn><eos><pad>")
    }

    func testSpecialTokenParsing() throws {
        let t = try TokenizerFixtures.tokenizer()
        let sot = t.id(of: "<start_of_turn>")!, eot = t.id(of: "<end_of_turn>")!
        let prompt = "<start_of_turn>user\nWrite a poem<end_of_turn>\n<start_of_turn>model\n"
        XCTAssertEqual(t.encode(prompt, parseSpecialTokens: true),
                       [sot] + t.encode("user\nWrite a poem") + [eot] + t.encode("\n") + [sot] + t.encode("model\n"))
        XCTAssertEqual(t.encode(prompt, parseSpecialTokens: false), t.encode(prompt))
        XCTAssertEqual(t.encode("<bos>hi", parseSpecialTokens: true), [t.bosId] + t.encode("hi"))
        XCTAssertEqual(t.encode("<eos><eos>", parseSpecialTokens: true), [t.eosId, t.eosId])
        XCTAssertEqual(t.encode("<<bos>>", parseSpecialTokens: true), t.encode("<") + [t.bosId] + t.encode(">"))
        // Not quite special: encoded as text.
        for text in ["<start_of_turn", "<bos", "<Bos>", "< bos>", "<unk>", "<foo>", "<", ""] {
            XCTAssertEqual(t.encode(text, parseSpecialTokens: true), t.encode(text), text)
        }
        // User-defined pieces are matched by plain encoding anyway.
        XCTAssertEqual(t.encode("<mask>", parseSpecialTokens: true), [t.id(of: "<mask>")!])
        XCTAssertEqual(t.specialTokens, ["<pad>": 0, "<eos>": 1, "<bos>": 2, "<start_of_turn>": 4, "<end_of_turn>": 5])
        // Control pieces decode to nothing.
        XCTAssertSameText(t.decode(t.encode(prompt, parseSpecialTokens: true)), "user\nWrite a poem\nmodel\n")
    }

    func testEncodeSpeed() throws {
        let t = try TokenizerFixtures.tokenizer()
        let corpus = try TokenizerFixtures.corpus()
        var text = ""
        while text.utf8.count < 100_000 {
            for c in corpus.cases where text.utf8.count < 100_000 { text += c.text + "\n" }
        }
        let clock = ContinuousClock()
        var ids: [Int] = []
        let elapsed = clock.measure { ids = t.encode(text) }
        // Lossless except that a literal ▁ in the text comes back as a space.
        var expected = String.UnicodeScalarView()
        for u in text.unicodeScalars { expected.append(u == "\u{2581}" ? " " : u) }
        XCTAssert(Array(t.decode(ids).utf8) == Array(String(expected).utf8))
        // Pathological inputs: one long run of a character, of spaces, of unknown scalars.
        let runs = [String(repeating: "a", count: 100_000), String(repeating: " ", count: 100_000),
                    String(repeating: "\u{10FFFF}", count: 25_000)]
        let runsElapsed = clock.measure { for r in runs { _ = t.encode(r) } }
        print("tokenizer encode: \(text.utf8.count) bytes -> \(ids.count) ids in \(elapsed); 3 x 100 KB runs in \(runsElapsed)")
        XCTAssertLessThan(elapsed, .seconds(2), "100 KB should encode in well under a second")
    }
}
