import Foundation
@testable import GemmaTiny
import XCTest

/// Constrained decoding on a real vocabulary: the fast mask (prefix walk over the sorted token
/// bytes, plain-string shortcut) equals trying every token; the sampler never picks a refused
/// token; the engine and `gemma-tiny run` produce replies that parse.
final class StructuredDecodingTests: XCTestCase {
    static let schema = #"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},"tags":{"type":"array","items":{"enum":["a b","c\"d"]},"maxItems":2},"ok":{"type":"boolean"}},"required":["name","age"],"additionalProperties":false}"#
    static let reply = #"{"name": "Zoë \"Q\" \\ tab\tx 😀", "age": -42, "tags": ["a b", "c\"d"], "ok": true}"#

    /// At every token of a reply (strings with escapes and multi-byte characters included), the
    /// allowed set from the index walk is exactly the set of tokens `allows` accepts one by one.
    func testMaskEqualsTokenByTokenCheck() throws {
        let tokenizer = try TokenizerFixtures.tokenizer()
        let index = TokenByteIndex(tokenizer: tokenizer)
        for (grammar, reply) in [(try JSONSchemaCompiler.compile(schema: Self.schema), Self.reply.replacingOccurrences(of: "\t", with: "\\t")),
                                 (JSONGrammar.jsonObject, #"{"k": [1.5e-3, {"n": null}, "x\u00e9\ud83d\ude00"], "b": false}"#)] {
            var constraint = JSONConstraint(grammar: grammar, index: index)
            let tokens = tokenizer.encode(reply)
            XCTAssertEqual(tokenizer.decode(tokens), reply)
            var steps = 0, stringSteps = 0
            for token in tokens {
                let fast = constraint.allowedTokens()
                let slow = (0..<tokenizer.vocabularySize).filter { constraint.allows($0) }
                XCTAssertEqual(fast, slow, "after \(steps) tokens of \(reply)")
                XCTAssertTrue(fast.contains(token), "token \(token) of the reply refused after \(steps) tokens")
                XCTAssertGreaterThan(fast.count, 0)
                if constraint.states.allSatisfy(\.isInStringContent) { stringSteps += 1 }
                XCTAssertTrue(constraint.accept(token))
                steps += 1
            }
            XCTAssertTrue(constraint.canEnd)
            XCTAssertGreaterThan(stringSteps, 0, "no step inside a string: the shortcut went untested")
            // Once closed, only the end tokens remain.
            XCTAssertTrue(constraint.isClosed)
            XCTAssertEqual(constraint.allowedTokens(), index.endTokens.sorted())
        }
    }

    /// Greedy picks the best allowed token; with temperature, every draw is allowed.
    func testSamplerOnlyDrawsAllowedTokens() throws {
        let tokenizer = try TokenizerFixtures.tokenizer()
        let index = TokenByteIndex(tokenizer: tokenizer)
        let grammar = try JSONSchemaCompiler.compile(schema: Self.schema)
        var rng = Xoshiro256StarStar(seed: 7)
        var greedy = Sampler(options: .greedy)
        var warm = Sampler(options: SamplingOptions(temperature: 0.9, topK: 40, topP: 0.95, seed: 3))
        var constraint = JSONConstraint(grammar: grammar, index: index)
        for token in tokenizer.encode(Self.reply.replacingOccurrences(of: "\t", with: "\\t")) {
            for _ in 0..<5 {
                var logits = (0..<tokenizer.vocabularySize).map { _ in Float.random(in: -5...5, using: &rng) }
                let allowed = constraint.allowedTokens()
                let best = allowed.max { logits[$0] < logits[$1] }!
                var copy = logits
                XCTAssertEqual(copy.withUnsafeMutableBufferPointer { greedy.sample(logits: $0, recent: [], constraint: &constraint) }, best)
                let drawn = logits.withUnsafeMutableBufferPointer { warm.sample(logits: $0, recent: [], constraint: &constraint) }
                XCTAssertTrue(drawn.map { allowed.contains($0) } ?? false, "drew \(String(describing: drawn))")
            }
            XCTAssertTrue(constraint.accept(token))
        }
    }

    /// The engine on the tiny random-weight model: whatever the model prefers, a reply that
    /// ends by itself parses and fits the schema; one cut by maxTokens says so.
    func testEngineRepliesFollowTheFormat() async throws {
        let engine = try EngineFixtures.engine()
        let session = try engine.makeSession()
        let bounded = #"{"type":"object","properties":{"label":{"enum":["yes","no"]},"n":{"type":"integer"},"f":{"type":"boolean"}},"required":["label","n","f"],"additionalProperties":false}"#
        for seed in 0..<4 {
            var options = GenerationOptions(maxTokens: 400, sampling: SamplingOptions(temperature: 1, seed: UInt64(seed)))
            options.responseFormat = .jsonSchema(bounded)
            let c = try await session.completion(prompt: "Answer:", options: options)
            XCTAssertEqual(c.summary.stopReason, .responseComplete, c.text)
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(c.text.utf8)) as? [String: Any], c.text)
            XCTAssertEqual(Set(object.keys), ["label", "n", "f"])
            XCTAssertTrue(["yes", "no"].contains(object["label"] as? String ?? ""), c.text)
            XCTAssertEqual(c.summary.usage.completionTokens, c.summary.generatedTokens.count)
        }
        // At least 40 items cannot fit in 10 tokens: the reply is cut, and says so.
        var options = GenerationOptions(maxTokens: 10, sampling: .greedy)
        options.responseFormat = .jsonSchema(#"{"type":"array","items":{"type":"integer"},"minItems":40}"#)
        let cut = try await session.completion(prompt: "Numbers:", options: options)
        XCTAssertEqual(cut.summary.stopReason, .maxTokens)
        XCTAssertNil(try? JSONSerialization.jsonObject(with: Data(cut.text.utf8), options: .fragmentsAllowed))
        // A schema the decoder cannot enforce is refused before anything runs.
        options.responseFormat = .jsonSchema(#"{"type":"string","pattern":"x"}"#)
        let error = await EngineFixtures.error(of: session.generate(prompt: "x", options: options))
        XCTAssertEqual(error, .invalidOptions("response format: the JSON Schema keyword 'pattern' at # is not supported"))
    }
}
