import Foundation
import GemmaTiny
import XCTest

/// `semantics: "llama.cpp"` (models imported from GGUF) on small hand-built vocabularies. Every
/// expected id list is what llama.cpp's `llama-tokenize --ids --no-bos [--no-parse-special]
/// --no-escape` gave for a vocabulary-only GGUF holding the same tokens (written with gguf-py:
/// <pad> <eos> <bos> <unk> as CONTROL, the 256 byte tokens, then the tokens listed here, the
/// user-defined ones with real spaces), llama.cpp as vendored by llama-cpp-python 0.3.36.
final class TokenizerLlamaCppTests: XCTestCase {
    typealias PieceType = TokenizerVocabulary.PieceType

    /// Ids 0-3 `<pad> <eos> <bos> <unk>`, 4-259 `<0x00>`-`<0xFF>`, then `extra` from id 260,
    /// written as the model file writes them (▁ for spaces in user-defined pieces too).
    static func tokenizer(_ extra: [(String, Float, PieceType)], addDummyPrefix: Bool = false,
                          semantics: TokenizerSettings.Semantics = .llamaCpp) throws -> Tokenizer {
        var pieces = ["<pad>", "<eos>", "<bos>", "<unk>"]
        var scores: [Float] = [-1000, -1000, -1000, -1000]
        var types: [PieceType] = [.control, .control, .control, .unknown]
        for b in 0..<256 {
            pieces.append(String(format: "<0x%02X>", b))
            scores.append(0)
            types.append(.byte)
        }
        for (piece, score, type) in extra {
            pieces.append(piece)
            scores.append(score)
            types.append(type)
        }
        let settings = TokenizerSettings(
            model: "bpe", bosId: 2, eosId: 1, padId: 0, unkId: 3, addDummyPrefix: addDummyPrefix,
            removeExtraWhitespaces: false, escapeWhitespaces: true, byteFallback: true, normalizer: "identity",
            semantics: semantics)
        return try Tokenizer(vocabulary: TokenizerVocabulary(pieces: pieces, scores: scores, types: types), settings: settings)
    }

    /// 260 ▁, 261-274 letters and words, 275 "  ", 276 "   ", 277 "\n", 278 "\n\n", 279 "\t\t".
    static let whitespace: [(String, Float, PieceType)] = [
        ("\u{2581}", -1, .normal), ("h", -2, .normal), ("e", -3, .normal), ("l", -4, .normal), ("o", -5, .normal),
        ("he", -6, .normal), ("ll", -7, .normal), ("llo", -8, .normal), ("hello", -9, .normal), ("\u{2581}h", -10, .normal),
        ("\u{2581}hello", -11, .normal), ("a", -12, .normal), ("b", -13, .normal), ("\u{2581}a", -14, .normal),
        ("\u{2581}b", -15, .normal),
        ("\u{2581}\u{2581}", -1000, .userDefined), ("\u{2581}\u{2581}\u{2581}", -1000, .userDefined),
        ("\n", -1000, .userDefined), ("\n\n", -1000, .userDefined), ("\t\t", -1000, .userDefined),
    ]

    /// User-defined pieces are matched on the raw text, where a literal ▁ is not a space: it
    /// never joins a whitespace-run piece, and the merges (done on the escaped text) never form
    /// one either.
    func testLiteralSpaceSymbolStaysApartFromWhitespacePieces() throws {
        let t = try Self.tokenizer(Self.whitespace)
        let cases: [(String, [Int])] = [
            ("\u{2581}\u{2581}hello", [260, 270]),
            (" \u{2581} ", [260, 260, 260]),
            ("\u{2581} ", [260, 260]),
            ("  hello", [275, 268]),
            (" hello", [270]),
            ("hello", [268]),
            ("a  b", [271, 275, 272]),
            ("a   b", [271, 276, 272]),
            ("a    b", [271, 276, 274]),  // "   " first, then " b"
            ("\n\n\n", [278, 277]),
            ("a\n\n b", [271, 278, 274]),
            ("\t\t\t", [279, 13]),  // a single tab is the byte piece <0x09>
        ]
        for (text, ids) in cases {
            XCTAssertEqual(t.encode(text), ids, text.debugDescription)
            XCTAssertEqual(t.encode(text, parseSpecialTokens: true), ids, text.debugDescription)
            XCTAssertSameText(t.decode(ids), text.replacingOccurrences(of: "\u{2581}", with: " "))
        }
        // SentencePiece's semantics on the same vocabulary: the normalizer makes every space ▁
        // first, so a literal ▁ is a space there and joins the user-defined piece.
        let sentencePiece = try Self.tokenizer(Self.whitespace, semantics: .sentencePiece)
        XCTAssertEqual(sentencePiece.encode("\u{2581}\u{2581}hello"), [275, 268])
        XCTAssertEqual(sentencePiece.encode(" \u{2581} "), [276])
    }

    /// llama.cpp takes pieces longest first over the whole text (ties by id here), not the
    /// longest match from the left: the two differ when pieces overlap.
    func testOverlappingPiecesAreTakenLongestFirst() throws {
        // 260 a, 261 b, 262 c, 263 "ba", 264 "ab", 265 "cab", 266 "abc".
        let pieces: [(String, Float, PieceType)] = [
            ("a", -1, .normal), ("b", -2, .normal), ("c", -3, .normal),
            ("ba", -1000, .userDefined), ("ab", -1000, .userDefined), ("cab", -1000, .userDefined), ("abc", -1000, .userDefined),
        ]
        let t = try Self.tokenizer(pieces)
        XCTAssertEqual(t.encode("abcab"), [264, 265], "cab is taken before abc (same length, lower id), then ab")
        XCTAssertEqual(t.encode("cabc"), [265, 262])
        XCTAssertEqual(t.encode("aba"), [260, 263], "ba (id 263) before ab (264)")
        XCTAssertEqual(t.encode("abab"), [260, 263, 261])
        XCTAssertEqual(t.encode("bab"), [263, 261])
        // Left-to-right longest matching (SentencePiece) gives "abc" + "ab".
        XCTAssertEqual(try Self.tokenizer(pieces, semantics: .sentencePiece).encode("abcab"), [266, 264])
    }

    /// 260 ▁, 261-273 letters and pairs, 274 `<ctl>` and 275 `<x>` CONTROL, 276 `<ud>` and
    /// 277 `</s>` (USER_DEFINED in the GGUF, CONTROL once llama.cpp has loaded it), 278 /, 279 s.
    static let controls: [(String, Float, PieceType)] = [
        ("\u{2581}", -1, .normal), ("a", -2, .normal), ("b", -3, .normal), ("<", -4, .normal), (">", -5, .normal),
        ("c", -6, .normal), ("t", -7, .normal), ("l", -8, .normal), ("x", -9, .normal), ("<c", -10, .normal),
        ("tl", -11, .normal), ("tl>", -12, .normal), ("\u{2581}a", -13, .normal), ("\u{2581}b", -14, .normal),
        ("<ctl>", -1000, .control), ("<x>", -1000, .control), ("<ud>", -1000, .userDefined), ("</s>", -1000, .control),
        ("/", -15, .normal), ("s", -16, .normal),
    ]

    /// Plain text never matches control pieces as a whole, but llama.cpp's BPE merges into any
    /// piece, so `<ctl>` (reachable as `<c` + `tl>`) still becomes its id while `<x>` is spelled
    /// out. Parsing special tokens matches control and unknown pieces, together with the
    /// user-defined ones.
    func testControlPieceTextWithAndWithoutParsingSpecialTokens() throws {
        let t = try Self.tokenizer(Self.controls)
        let cases: [(String, plain: [Int], special: [Int])] = [
            ("<ctl>", [274], [274]),
            ("<x>", [263, 268, 264], [275]),
            ("a<x>b", [261, 263, 268, 264, 262], [261, 275, 262]),
            ("<unk>", [263, 121, 114, 111, 264], [3]),  // u n k are byte pieces
            ("a<ud>b", [261, 276, 262], [261, 276, 262]),
            ("</s>", [263, 278, 279, 264], [277]),
            ("<ctl><x>", [274, 263, 268, 264], [274, 275]),
            ("a <x> b", [261, 260, 263, 268, 264, 273], [261, 260, 275, 273]),
            ("<<x>>", [263, 263, 268, 264, 264], [263, 275, 264]),
        ]
        for (text, plain, special) in cases {
            XCTAssertEqual(t.encode(text), plain, text)
            XCTAssertEqual(t.encode(text, parseSpecialTokens: false), plain, text)
            XCTAssertEqual(t.encode(text, parseSpecialTokens: true), special, text)
        }
        XCTAssertEqual(t.specialTokens, ["<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<ctl>": 274, "<x>": 275, "</s>": 277])
    }

    /// With a dummy prefix, llama.cpp adds it to every stretch of text that starts the input or
    /// follows a matched piece (user-defined or special), not only at the start.
    func testDummyPrefixAfterEveryPiece() throws {
        let t = try Self.tokenizer(Self.controls, addDummyPrefix: true)
        let cases: [(String, plain: [Int], special: [Int])] = [
            ("<ctl>", [260, 274], [274]),
            ("<x>", [260, 263, 268, 264], [275]),
            ("a<x>b", [272, 263, 268, 264, 262], [272, 275, 273]),
            ("<unk>", [260, 263, 121, 114, 111, 264], [3]),
            ("a<ud>b", [272, 276, 273], [272, 276, 273]),
            ("</s>", [260, 263, 278, 279, 264], [277]),
            ("<ctl><x>", [260, 274, 263, 268, 264], [274, 275]),
            ("a <x> b", [272, 260, 263, 268, 264, 273], [272, 260, 275, 260, 273]),
            ("<<x>>", [260, 263, 263, 268, 264, 264], [260, 263, 275, 260, 264]),
            ("", [], []),
        ]
        for (text, plain, special) in cases {
            XCTAssertEqual(t.encode(text), plain, text)
            XCTAssertEqual(t.encode(text, parseSpecialTokens: true), special, text)
        }
    }

    /// The setting is stored in the metadata only when it is not SentencePiece's: files written
    /// before it existed read as SentencePiece, and such files are written unchanged.
    func testSemanticsMetadataKey() throws {
        let sentencePiece = TokenizerSettings(
            model: "bpe", bosId: 2, eosId: 1, padId: 0, unkId: 3, addDummyPrefix: false, removeExtraWhitespaces: false,
            escapeWhitespaces: true, byteFallback: true, normalizer: "identity")
        var llamaCpp = sentencePiece
        llamaCpp.semantics = .llamaCpp
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let old = String(decoding: try encoder.encode(sentencePiece), as: UTF8.self)
        XCTAssertFalse(old.contains("semantics"), old)
        let new = String(decoding: try encoder.encode(llamaCpp), as: UTF8.self)
        XCTAssertTrue(new.contains(#""semantics":"llama.cpp""#), new)
        XCTAssertEqual(try JSONDecoder().decode(TokenizerSettings.self, from: Data(old.utf8)), sentencePiece)
        XCTAssertEqual(try JSONDecoder().decode(TokenizerSettings.self, from: Data(new.utf8)), llamaCpp)
        let unknown = new.replacingOccurrences(of: "llama.cpp", with: "tiktoken")
        XCTAssertThrowsError(try JSONDecoder().decode(TokenizerSettings.self, from: Data(unknown.utf8)))
    }
}
