import Foundation
import GemmaConvert
import GemmaTiny
import XCTest

/// The committed tokenizer fixtures (fixtures/generate.py and fixtures/tokenizer_variants.py
/// write them with the sentencepiece library). Missing fixtures fail the test, never skip it.
enum TokenizerFixtures {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures")
    static var modelPath: String { root.appendingPathComponent("tokenizer/tokenizer.model").path }

    struct Corpus: Decodable {
        struct Case: Decodable {
            let category: String
            let text: String
            let ids: [Int]
            let pieces: [String]
            let decoded: String
        }
        let tokenizer_sha256: String
        let vocab_size: Int
        let cases: [Case]
    }

    struct Vocabulary: Decodable {
        let pieces: [[Entry]]
        enum Entry: Decodable {
            case text(String), number(Double)
            init(from decoder: Decoder) throws {
                let c = try decoder.singleValueContainer()
                if let d = try? c.decode(Double.self) { self = .number(d) } else { self = .text(try c.decode(String.self)) }
            }
            var text: String? { if case .text(let s) = self { return s }; return nil }
            var number: Double? { if case .number(let d) = self { return d }; return nil }
        }
    }

    struct Variants: Decodable {
        struct Variant: Decodable {
            struct Settings: Decodable {
                let add_dummy_prefix: Bool?
                let remove_extra_whitespaces: Bool?
                let escape_whitespaces: Bool?
                let byte_fallback: Bool?
            }
            struct Case: Decodable {
                let text: String
                let ids: [Int]
                let decoded: String
            }
            let name: String
            let settings: Settings
            let unused_ids: [Int]
            let cases: [Case]
        }
        struct DecodeCase: Decodable {
            let ids: [Int]
            let decoded: String
        }
        let tokenizer_sha256: String
        let variants: [Variant]
        let decode_cases: [DecodeCase]
    }

    /// Made from the same tokenizer.model as the corpus, or stale.
    static func variants() throws -> Variants {
        let v = try JSONDecoder().decode(Variants.self, from: data("goldens/tokenizer-variants.json"))
        let corpusHash = try corpus().tokenizer_sha256
        guard v.tokenizer_sha256 == corpusHash else {
            XCTFail("goldens/tokenizer-variants.json was made from another tokenizer.model: run fixtures/tokenizer_variants.py")
            throw CocoaError(.fileReadCorruptFile)
        }
        return v
    }

    static func data(_ relative: String) throws -> Data {
        let url = root.appendingPathComponent(relative)
        guard FileManager.default.fileExists(atPath: url.path) else {
            XCTFail("fixture \(relative) is missing: run fixtures/generate.py (see its header)")
            throw CocoaError(.fileNoSuchFile)
        }
        return try Data(contentsOf: url)
    }

    static func corpus() throws -> Corpus {
        try JSONDecoder().decode(Corpus.self, from: data("goldens/tokenizer-corpus.json"))
    }

    static func vocabulary() throws -> Vocabulary {
        try JSONDecoder().decode(Vocabulary.self, from: data("goldens/tokenizer-vocab.json"))
    }

    static func read() throws -> (TokenizerVocabulary, TokenizerSettings) {
        _ = try data("tokenizer/tokenizer.model")
        return try SentencePieceModelReader.read(path: modelPath)
    }

    static func tokenizer() throws -> Tokenizer {
        let (vocabulary, settings) = try read()
        return try Tokenizer(vocabulary: vocabulary, settings: settings)
    }
}

/// Byte-exact comparison (Swift's String == treats canonically equivalent strings as equal).
func XCTAssertSameText(_ a: String, _ b: String, _ message: @autoclosure () -> String = "",
                       file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(Array(a.utf8), Array(b.utf8), "\(a.debugDescription) != \(b.debugDescription) \(message())",
                   file: file, line: line)
}
