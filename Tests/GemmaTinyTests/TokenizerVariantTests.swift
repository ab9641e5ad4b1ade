import Foundation
import GemmaTiny
import XCTest

/// Settings Gemma does not use, and UNUSED pieces, against sentencepiece run on edited copies
/// of the fixture model (fixtures/goldens/tokenizer-variants.json, fixtures/tokenizer_variants.py).
final class TokenizerVariantTests: XCTestCase {
    func testVariantsMatchSentencePiece() throws {
        let (base, baseSettings) = try TokenizerFixtures.read()
        let doc = try TokenizerFixtures.variants()
        XCTAssertEqual(doc.variants.count, 6)
        for variant in doc.variants {
            var vocabulary = base
            for id in variant.unused_ids { vocabulary.types[id] = .unused }
            var settings = baseSettings
            settings.addDummyPrefix = variant.settings.add_dummy_prefix ?? settings.addDummyPrefix
            settings.removeExtraWhitespaces = variant.settings.remove_extra_whitespaces ?? settings.removeExtraWhitespaces
            settings.escapeWhitespaces = variant.settings.escape_whitespaces ?? settings.escapeWhitespaces
            settings.byteFallback = variant.settings.byte_fallback ?? settings.byteFallback
            let t = try Tokenizer(vocabulary: vocabulary, settings: settings)
            var failures = 0
            for c in variant.cases {
                let ids = t.encode(c.text)
                if ids != c.ids {
                    failures += 1
                    if failures <= 5 { XCTFail("\(variant.name): \(c.text.debugDescription): got \(ids), sentencepiece \(c.ids)") }
                }
                XCTAssertSameText(t.decode(c.ids), c.decoded, "\(variant.name) decode")
                var stream = t.makeStreamingDecoder()
                XCTAssertSameText(c.ids.map { stream.append($0) }.joined() + stream.finish(), c.decoded, "\(variant.name) streaming")
            }
            XCTAssertEqual(failures, 0, "\(variant.name): \(failures) of \(variant.cases.count) differ")
        }
    }
}

/// What the tokenizer refuses to be built from.
final class TokenizerValidationTests: XCTestCase {
    private let settings = TokenizerSettings(
        model: "bpe", bosId: 2, eosId: 1, padId: 0, unkId: 3, addDummyPrefix: false,
        removeExtraWhitespaces: false, escapeWhitespaces: true, byteFallback: false, normalizer: "identity")
    private let vocabulary = TokenizerVocabulary(
        pieces: ["<pad>", "<eos>", "<bos>", "<unk>", "a", "b", "ab"], scores: [0, 0, 0, 0, -1, -2, -3],
        types: [.control, .control, .control, .unknown, .normal, .normal, .normal])

    private func assertRefused(_ v: TokenizerVocabulary, _ s: TokenizerSettings, _ expected: String,
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Tokenizer(vocabulary: v, settings: s), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(expected), "\(error)", file: file, line: line)
        }
    }

    func testSmallVocabularyWorks() throws {
        let t = try Tokenizer(vocabulary: vocabulary, settings: settings)
        XCTAssertEqual(t.encode("abab a"), [6, 6, 3, 4])  // "▁" is unknown; no byte fallback
        XCTAssertEqual(t.encode("  x"), [3])  // a run of unknown symbols is one unknown id
        XCTAssertEqual(t.decode([6, 3, 4]), "ab \u{2047} a")
    }

    func testRefusesWhatItDoesNotImplement() {
        var s = settings
        s.model = "unigram"
        assertRefused(vocabulary, s, "unsupported tokenizer: model type \"unigram\"")
        s = settings
        s.normalizer = "nmt_nfkc"
        assertRefused(vocabulary, s, "unsupported tokenizer: normalizer \"nmt_nfkc\"")
    }

    func testRefusesWhatSentencePieceRefuses() {
        var v = vocabulary
        v.types[3] = .normal
        assertRefused(v, settings, "no UNKNOWN piece")
        v = vocabulary
        v.types[4] = .unknown
        assertRefused(v, settings, "both UNKNOWN")
        v = vocabulary
        v.pieces[5] = "a"
        assertRefused(v, settings, "piece a is defined twice")
        v = vocabulary
        v.pieces[5] = ""
        assertRefused(v, settings, "piece 5 is empty")
        v = vocabulary
        v.pieces[5] = "<0x41>"
        v.types[5] = .byte
        assertRefused(v, settings, "although byte_fallback is false")
        var s = settings
        s.byteFallback = true
        assertRefused(v, s, "no piece for byte 0")
        v.pieces[5] = "<0x4g>"
        assertRefused(v, s, "not <0xNN>")
        v = vocabulary
        v.scores.removeLast()
        assertRefused(v, settings, "7 pieces but 6 scores")
        s = settings
        s.unkId = 0
        assertRefused(vocabulary, s, "unk_id is 0 but the UNKNOWN piece is id 3")
        s = settings
        s.bosId = 7
        assertRefused(vocabulary, s, "bos_id 7 is outside")
    }
}
