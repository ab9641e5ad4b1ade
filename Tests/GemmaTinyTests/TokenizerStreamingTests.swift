import Foundation
import GemmaTiny
import XCTest

/// StreamingDecoder: what it returns piece by piece must add up to `decode`, and it must never
/// return part of a UTF-8 character.
final class TokenizerStreamingTests: XCTestCase {
    private func streamed(_ t: Tokenizer, _ ids: [Int]) -> [String] {
        var decoder = t.makeStreamingDecoder()
        return ids.map { decoder.append($0) } + [decoder.finish()]
    }

    private func byteIds(_ t: Tokenizer, _ bytes: [UInt8]) -> [Int] {
        bytes.map { t.id(of: String(format: "<0x%02X>", $0))! }
    }

    func testStreamingEqualsDecodeOnCorpus() throws {
        let t = try TokenizerFixtures.tokenizer()
        let corpus = try TokenizerFixtures.corpus()
        let decodeCases = try TokenizerFixtures.variants().decode_cases
        for ids in corpus.cases.map(\.ids) + decodeCases.map(\.ids) {
            XCTAssertSameText(streamed(t, ids).joined(), t.decode(ids), "ids \(ids)")
        }
    }

    func testStreamingWaitsForCompleteCharacters() throws {
        let t = try TokenizerFixtures.tokenizer()
        XCTAssertEqual(streamed(t, byteIds(t, [0xE2, 0x82, 0xAC])), ["", "", "€", ""])
        XCTAssertEqual(streamed(t, byteIds(t, [0xF0, 0x9F, 0x98, 0x80, 0x41])), ["", "", "", "😀", "A", ""])
        // Known to be invalid as soon as it arrives: no waiting.
        XCTAssertEqual(streamed(t, byteIds(t, [0xC0, 0xFF, 0x80])), ["\u{FFFD}", "\u{FFFD}", "\u{FFFD}", ""])
        XCTAssertEqual(streamed(t, byteIds(t, [0xED, 0xA0])), ["", "\u{FFFD}\u{FFFD}", ""])  // surrogate
        // The character never completes: replaced when that becomes certain.
        XCTAssertEqual(streamed(t, byteIds(t, [0xE2, 0x82, 0x41])), ["", "", "\u{FFFD}\u{FFFD}A", ""])
        XCTAssertEqual(streamed(t, byteIds(t, [0xE2, 0x82]) + t.encode("a")), ["", "", "\u{FFFD}\u{FFFD}a", ""])
        XCTAssertEqual(streamed(t, byteIds(t, [0xE2, 0x82])), ["", "", "\u{FFFD}\u{FFFD}"])
        // Ordinary pieces come out at once, controls as nothing.
        let ids = [t.bosId] + t.encode("Hello world")
        let parts = streamed(t, ids)
        XCTAssertEqual(parts.first, "")
        XCTAssertEqual(parts.dropFirst().dropLast().map { $0.isEmpty }, Array(repeating: false, count: ids.count - 1))
    }

    /// Every sequence of up to three bytes from a set covering UTF-8's boundary cases, alone
    /// and followed by a normal piece: streamed output equals the batch decode.
    func testStreamingEqualsDecodeOnAllShortByteSequences() throws {
        let t = try TokenizerFixtures.tokenizer()
        let interesting: [UInt8] = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                                    0xE0, 0xE1, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xF8, 0xFF]
        let a = t.encode("a")
        var sequences: [[UInt8]] = interesting.map { [$0] }
        for x in interesting { for y in interesting { sequences.append([x, y]) } }
        for x in interesting { for y in interesting { for z in interesting { sequences.append([x, y, z]) } } }
        for s in sequences {
            let ids = byteIds(t, s)
            XCTAssertSameText(streamed(t, ids).joined(), t.decode(ids), "bytes \(s)")
            XCTAssertSameText(streamed(t, ids + a).joined(), t.decode(ids + a), "bytes \(s) + a")
        }
        // Four-byte sequences around the U+10000 and U+10FFFF edges.
        for s: [UInt8] in [[0xF0, 0x90, 0x80, 0x80], [0xF0, 0x8F, 0xBF, 0xBF], [0xF4, 0x8F, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80]] {
            let ids = byteIds(t, s)
            XCTAssertSameText(streamed(t, ids).joined(), t.decode(ids), "bytes \(s)")
        }
    }
}
