import Foundation
import GemmaConvert
import GemmaTiny
import XCTest

/// SentencePieceModelReader: the vocabulary must be the one sentencepiece reports
/// (fixtures/goldens/tokenizer-vocab.json), and bad input must throw, never crash.
final class TokenizerReaderTests: XCTestCase {
    func testVocabularyMatchesSentencePiece() throws {
        let (vocabulary, settings) = try TokenizerFixtures.read()
        let expected = try TokenizerFixtures.vocabulary().pieces
        XCTAssertEqual(vocabulary.count, expected.count)
        let typeNames: [TokenizerVocabulary.PieceType: String] = [
            .normal: "normal", .unknown: "unknown", .control: "control",
            .userDefined: "user_defined", .unused: "unused", .byte: "byte",
        ]
        for (i, row) in expected.enumerated() where i < vocabulary.count {
            XCTAssertEqual(Array(vocabulary.pieces[i].utf8), Array((row[0].text ?? "").utf8), "piece \(i)")
            XCTAssertEqual(vocabulary.scores[i], Float(row[1].number ?? .nan), "score of piece \(i)")
            XCTAssertEqual(typeNames[vocabulary.types[i]], row[2].text, "type of piece \(i)")
        }
        XCTAssertEqual(settings, TokenizerSettings(
            model: "bpe", bosId: 2, eosId: 1, padId: 0, unkId: 3, addDummyPrefix: false,
            removeExtraWhitespaces: false, escapeWhitespaces: true, byteFallback: true, normalizer: "identity"))
    }

    func testReadsEditedFields() throws {
        // A minimal model with every field the reader uses set explicitly.
        var model = ProtoBuilder()
        for (piece, type) in [("<unk>", 2), ("a", 1), ("<s>", 3)] {
            model = model.message(1, ProtoBuilder().string(1, piece).float(2, -1.5).varint(3, UInt64(type)))
        }
        model = model.message(2, ProtoBuilder().varint(3, 2).varint(35, 0).int32(40, 0).int32(41, 2).int32(42, -1).int32(43, -1))
        model = model.message(3, ProtoBuilder().string(1, "identity").varint(3, 1).varint(4, 1).varint(5, 0))
        let (v, s) = try SentencePieceModelReader.read(bytes: model.bytes)
        XCTAssertEqual(v, TokenizerVocabulary(pieces: ["<unk>", "a", "<s>"], scores: [-1.5, -1.5, -1.5], types: [.unknown, .normal, .control]))
        XCTAssertEqual(s, TokenizerSettings(model: "bpe", bosId: 2, eosId: -1, padId: -1, unkId: 0, addDummyPrefix: true,
                                            removeExtraWhitespaces: true, escapeWhitespaces: false, byteFallback: false,
                                            normalizer: "identity"))
        // Defaults of sentencepiece_model.proto when the specs are absent.
        let (_, d) = try SentencePieceModelReader.read(bytes: ProtoBuilder().message(1, ProtoBuilder().string(1, "x")).bytes)
        XCTAssertEqual(d, TokenizerSettings(model: "unigram", bosId: 1, eosId: 2, padId: -1, unkId: 0, addDummyPrefix: true,
                                            removeExtraWhitespaces: true, escapeWhitespaces: true, byteFallback: false,
                                            normalizer: "identity"))
        // A precompiled normalization map is reported by name, so the runtime can refuse it.
        let nfkc = ProtoBuilder().message(1, ProtoBuilder().string(1, "x")).message(3, ProtoBuilder().string(1, "nmt_nfkc").bytes(2, [1, 2, 3]))
        XCTAssertEqual(try SentencePieceModelReader.read(bytes: nfkc.bytes).1.normalizer, "nmt_nfkc")
    }

    func testMalformedInputThrowsWithFileName() {
        let piece = ProtoBuilder().message(1, ProtoBuilder().string(1, "x"))
        let cases: [(String, [UInt8])] = [
            ("empty", []),
            ("truncated varint", [0x08]),
            ("length past the end", [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
            ("huge length", [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
            ("varint over 10 bytes", [0x08] + Array(repeating: 0xFF, count: 11) + [0x01]),
            ("wire type 7", [0x0F]),
            ("field 0", [0x00, 0x00]),
            ("unterminated group", [0x4B, 0x08, 0x01]),
            ("stray end group", [0x4C]),
            ("pieces with the wrong wire type", [0x08, 0x01]),
            ("no pieces", ProtoBuilder().message(2, ProtoBuilder().varint(3, 2)).bytes),
            ("empty piece", ProtoBuilder().message(1, ProtoBuilder().string(1, "")).bytes),
            ("piece without text", ProtoBuilder().message(1, ProtoBuilder().float(2, 1)).bytes),
            ("invalid UTF-8 piece", ProtoBuilder().message(1, ProtoBuilder().bytes(1, [0xFF, 0xFE])).bytes),
            ("unknown piece type", ProtoBuilder().message(1, ProtoBuilder().string(1, "x").varint(3, 9)).bytes),
            ("NaN score", ProtoBuilder().message(1, ProtoBuilder().string(1, "x").float(2, .nan)).bytes),
            ("truncated float", ProtoBuilder().message(1, ProtoBuilder().string(1, "x")).bytes + [0x15, 0x00, 0x00]),
            ("unknown model type", piece.message(2, ProtoBuilder().varint(3, 9)).bytes),
            ("treat_whitespace_as_suffix", piece.message(2, ProtoBuilder().varint(24, 1)).bytes),
            ("custom unk_surface", piece.message(2, ProtoBuilder().string(44, "?")).bytes),
            ("denormalizer", piece.message(5, ProtoBuilder().bytes(2, [1, 2])).bytes),
        ]
        for (what, bytes) in cases {
            XCTAssertThrowsError(try SentencePieceModelReader.read(bytes: bytes, name: "bad.model"), what) { error in
                let text = "\(error)"
                XCTAssertTrue(text.hasPrefix("bad.model: "), "\(what): \(text)")
                XCTAssertFalse(text.contains("\n"), "\(what): \(text)")
            }
        }
        XCTAssertThrowsError(try SentencePieceModelReader.read(path: "/nonexistent/tokenizer.model")) { error in
            XCTAssertTrue("\(error)".hasPrefix("/nonexistent/tokenizer.model: cannot read"), "\(error)")
        }
    }

    func testTruncatedAndCorruptedFilesNeverCrash() throws {
        let good = [UInt8](try TokenizerFixtures.data("tokenizer/tokenizer.model"))
        // Cut inside the first piece, and at many other lengths: a cut that happens to fall
        // between fields is still a valid protobuf, anything else must throw.
        var thrown = 0
        var lengths = Array(0..<300)
        lengths += stride(from: 300, to: good.count, by: 127)
        for n in lengths {
            do {
                _ = try SentencePieceModelReader.read(bytes: Array(good[..<n]))
            } catch {
                thrown += 1
            }
        }
        XCTAssertGreaterThan(thrown, lengths.count / 2)
        XCTAssertThrowsError(try SentencePieceModelReader.read(bytes: Array(good[..<5])))

        // Random garbage and random byte flips; whatever parses must also make a tokenizer
        // (or be refused by it) and encode without crashing.
        var rng = TokenizerTestRandom(seed: 42)
        var parsed = 0
        for round in 0..<600 {
            var bytes: [UInt8]
            if round < 300 {
                bytes = (0..<Int(rng.next() % 300)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            } else {
                bytes = good
                for _ in 0..<(1 + Int(rng.next() % 4)) {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
            }
            guard let (v, s) = try? SentencePieceModelReader.read(bytes: bytes) else { continue }
            parsed += 1
            if let t = try? Tokenizer(vocabulary: v, settings: s) {
                let ids = t.encode("Hello, wörld! <start_of_turn> 123\n\n  x", parseSpecialTokens: true)
                _ = t.decode(ids + [0, 1, 2, 3, -1, 5000])
            }
        }
        XCTAssertGreaterThan(parsed, 0)
    }
}

/// Writes protobuf wire format for the tests (builder style: each call returns a new value).
struct ProtoBuilder {
    var bytes: [UInt8] = []

    private static func raw(_ v: UInt64, into b: inout [UInt8]) {
        var v = v
        while v >= 0x80 { b.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        b.append(UInt8(v))
    }

    private func appending(_ field: Int, wire: Int, _ body: [UInt8]) -> ProtoBuilder {
        var p = self
        Self.raw(UInt64(field << 3 | wire), into: &p.bytes)
        p.bytes += body
        return p
    }

    func varint(_ field: Int, _ v: UInt64) -> ProtoBuilder {
        var body: [UInt8] = []
        Self.raw(v, into: &body)
        return appending(field, wire: 0, body)
    }
    func int32(_ field: Int, _ v: Int32) -> ProtoBuilder { varint(field, UInt64(bitPattern: Int64(v))) }
    func float(_ field: Int, _ v: Float) -> ProtoBuilder {
        appending(field, wire: 5, withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) })
    }
    func bytes(_ field: Int, _ b: [UInt8]) -> ProtoBuilder {
        var body: [UInt8] = []
        Self.raw(UInt64(b.count), into: &body)
        return appending(field, wire: 2, body + b)
    }
    func string(_ field: Int, _ s: String) -> ProtoBuilder { bytes(field, Array(s.utf8)) }
    func message(_ field: Int, _ m: ProtoBuilder) -> ProtoBuilder { bytes(field, m.bytes) }
}

/// A small deterministic generator for the fuzz rounds (SplitMix64).
struct TokenizerTestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
