import Foundation
import GemmaConvert
@testable import GemmaTiny
import XCTest

/// Structured output on the real Gemma 3 270M (the PyPI GGUF, default import): 20 prompts, each
/// with `json_object` and three schemas; every reply must end by itself and validate, judged by
/// Python's `jsonschema` library. Skipped without GEMMA3_270M_GGUF (scripts/fetch-gemma3-270m.sh)
/// or without python3 and jsonschema (`pip install jsonschema`; .ci/run installs it).
final class Gemma3StructuredOutputTests: XCTestCase {
    struct Subject {
        var name: String, age: Int, city: String, review: String, sentence: String
    }

    static let subjects: [Subject] = [
        Subject(name: "Bob", age: 25, city: "Rome", review: "Terrible battery, it died in a day.", sentence: "The dog ran to the park."),
        Subject(name: "Chen", age: 41, city: "Beijing", review: "Works as described.", sentence: "Birds sing in the morning."),
        Subject(name: "Dana", age: 19, city: "Oslo", review: "Best purchase of the year!", sentence: "The sun rises over the hills."),
        Subject(name: "Emil", age: 52, city: "Berlin", review: "It broke after one week.", sentence: "Rain falls on the roof."),
        Subject(name: "Fatima", age: 33, city: "Cairo", review: "Fast delivery and great quality.", sentence: "The child reads a book."),
        Subject(name: "Goro", age: 67, city: "Osaka", review: "Not worth the money.", sentence: "Snow covers the mountain."),
        Subject(name: "Hana", age: 28, city: "Seoul", review: "I love the colour.", sentence: "The train leaves at noon."),
        Subject(name: "Ivan", age: 45, city: "Kyiv", review: "Average, nothing special.", sentence: "Fish swim in the river."),
        Subject(name: "Julia", age: 22, city: "Madrid", review: "Awful customer service.", sentence: "The baker makes fresh bread."),
        Subject(name: "Kofi", age: 38, city: "Accra", review: "Exactly what I needed.", sentence: "Leaves fall in autumn."),
        Subject(name: "Lena", age: 30, city: "Vienna", review: "The screen cracked immediately.", sentence: "The cat chases a mouse."),
        Subject(name: "Marco", age: 57, city: "Milan", review: "Pretty good for the price.", sentence: "Ships sail across the sea."),
        Subject(name: "Nadia", age: 26, city: "Paris", review: "Wonderful, highly recommended!", sentence: "The farmer plants corn."),
        Subject(name: "Omar", age: 49, city: "Dubai", review: "Stopped working, very disappointed.", sentence: "Stars shine at night."),
        Subject(name: "Priya", age: 35, city: "Mumbai", review: "Does the job.", sentence: "The teacher writes on the board."),
        Subject(name: "Quinn", age: 18, city: "Dublin", review: "Amazing sound quality.", sentence: "Bees fly among the flowers."),
        Subject(name: "Rosa", age: 61, city: "Lima", review: "Too small and too loud.", sentence: "The wind blows the kite."),
        Subject(name: "Sven", age: 40, city: "Stockholm", review: "Great value.", sentence: "The chef cooks soup."),
        Subject(name: "Tara", age: 24, city: "Sydney", review: "Arrived broken.", sentence: "Waves crash on the shore."),
        Subject(name: "Umar", age: 36, city: "Lagos", review: "Happy with it so far.", sentence: "The clock ticks on the wall."),
    ]

    static let person = #"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},"city":{"type":"string"}},"required":["name","age","city"],"additionalProperties":false}"#
    static let review = #"{"type":"object","properties":{"label":{"enum":["positive","negative","neutral"]},"confidence":{"type":"number"},"flagged":{"type":"boolean"}},"required":["label","confidence","flagged"],"additionalProperties":false}"#
    static let words = #"{"type":"object","properties":{"words":{"type":"array","items":{"type":"string"},"minItems":1,"maxItems":4},"count":{"type":"integer"}},"required":["words","count"],"additionalProperties":false}"#

    static func personPrompt(_ s: Subject) -> String {
        "Person: Alice, 30, lives in Paris.\nJSON: {\"name\": \"Alice\", \"age\": 30, \"city\": \"Paris\"}\n" +
            "Person: \(s.name), \(s.age), lives in \(s.city).\nJSON:"
    }

    static func reviewPrompt(_ s: Subject) -> String {
        "Review: Great phone, I love it.\nJSON: {\"label\": \"positive\", \"confidence\": 0.9, \"flagged\": false}\n" +
            "Review: \(s.review)\nJSON:"
    }

    static func wordsPrompt(_ s: Subject) -> String {
        "Sentence: The cat sat on the mat.\nJSON: {\"words\": [\"cat\", \"sat\", \"mat\"], \"count\": 3}\n" +
            "Sentence: \(s.sentence)\nJSON:"
    }

    func testEveryReplyValidates() async throws {
        guard let gguf = ProcessInfo.processInfo.environment["GEMMA3_270M_GGUF"], !gguf.isEmpty else {
            throw XCTSkip("set GEMMA3_270M_GGUF to the file scripts/fetch-gemma3-270m.sh prints to run the Gemma 3 270M tests")
        }
        guard Self.python(["-c", "import jsonschema"]) == 0 else {
            throw XCTSkip("python3 with jsonschema is needed to judge the replies (pip install jsonschema)")
        }
        let path = ModelFixtures.tempDir + "/gemma3-270m-structured.gtm"
        if !FileManager.default.fileExists(atPath: path) {
            _ = try Converter.convert(checkpoint: gguf, output: path, options: ConversionOptions(compression: .never, overwrite: true))
        }
        let engine = try await GemmaEngine.load(path: path, options: GemmaEngine.Options(
            kernels: SIMDKernels(threads: 2), contextLength: 256, prefillChunkSize: 64))
        let session = try engine.makeSession()
        let formats: [(String, ResponseFormat, (Subject) -> String)] = [
            ("json_object", .jsonObject, Self.personPrompt),
            ("person", .jsonSchema(Self.person), Self.personPrompt),
            ("review", .jsonSchema(Self.review), Self.reviewPrompt),
            ("words", .jsonSchema(Self.words), Self.wordsPrompt),
        ]
        var replies: [[String: String]] = []
        var tokens = 0
        for (label, format, prompt) in formats {
            for subject in Self.subjects {
                var options = GenerationOptions.greedy(maxTokens: 96)
                options.responseFormat = format
                let c = try await session.completion(prompt: prompt(subject), options: options)
                tokens += c.summary.generatedTokens.count
                XCTAssertEqual(c.summary.stopReason, .responseComplete, "\(label) \(subject.name): \(c.text.debugDescription)")
                let schema: String
                switch format {
                case .jsonSchema(let s): schema = s
                default: schema = #"{"type":"object"}"#
                }
                replies.append(["label": "\(label) \(subject.name)", "schema": schema, "reply": c.text])
            }
        }
        // Judged by jsonschema: each reply must parse (strictly) and validate.
        let file = ModelFixtures.tempDir + "/gemma3-270m-structured-replies.json"
        try JSONSerialization.data(withJSONObject: replies).write(to: URL(fileURLWithPath: file))
        let script = """
        import json, sys, jsonschema
        def strict(name): raise ValueError(name)
        bad = 0
        for r in json.load(open(sys.argv[1])):
            try:
                jsonschema.validate(json.loads(r["reply"], parse_constant=strict), json.loads(r["schema"]))
            except Exception as e:
                bad += 1
                print("INVALID", r["label"], repr(r["reply"]), str(e).splitlines()[0])
        print("valid", sum(1 for _ in json.load(open(sys.argv[1]))) - bad, "invalid", bad)
        sys.exit(1 if bad else 0)
        """
        XCTAssertEqual(Self.python(["-c", script, file]), 0, "jsonschema refused replies (see the output above)")
        XCTAssertEqual(replies.count, 80)
        print("GEMMA3-270M structured output: \(replies.count) replies, \(tokens) tokens, every reply closed and validated by jsonschema")

        // A schema that cannot be met within max_tokens: cut, reported as maxTokens, never closed.
        var options = GenerationOptions.greedy(maxTokens: 12)
        options.responseFormat = .jsonSchema(#"{"type":"array","items":{"type":"integer"},"minItems":100}"#)
        let cut = try await session.completion(prompt: "Numbers from 1 to 100:", options: options)
        XCTAssertEqual(cut.summary.stopReason, .maxTokens)
        XCTAssertTrue(cut.text.hasPrefix("[") || cut.text.hasPrefix(" ["), cut.text)
        XCTAssertNil(try? JSONSerialization.jsonObject(with: Data(cut.text.utf8), options: .fragmentsAllowed), cut.text)
    }

    /// On the 262k vocabulary too, the fast mask equals trying every token, inside strings and out.
    func testMaskOnTheRealVocabulary() throws {
        guard let gguf = ProcessInfo.processInfo.environment["GEMMA3_270M_GGUF"], !gguf.isEmpty else {
            throw XCTSkip("set GEMMA3_270M_GGUF to the file scripts/fetch-gemma3-270m.sh prints to run the Gemma 3 270M tests")
        }
        let model = try GemmaModel.load(path: try ModelFixtures.convertedPath("gemma3-270m", .q8, checkpointPath: gguf))
        let tokenizer = try ModelFixtures.tokenizer(for: model)
        let index = TokenByteIndex(tokenizer: tokenizer)
        var constraint = JSONConstraint(grammar: try JSONSchemaCompiler.compile(schema: Self.person), index: index)
        let reply = #"{"name": "Zoë \"Q\"", "age": 7, "city": "日本"}"#
        let ids = tokenizer.encode(reply)
        var inString = 0
        for (step, token) in ids.enumerated() {
            if step % 3 == 0 || step == ids.count - 1 {
                let fast = constraint.allowedTokens()
                let slow = (0..<tokenizer.vocabularySize).filter { constraint.allows($0) }
                XCTAssertEqual(fast, slow, "step \(step)")
                XCTAssertTrue(fast.contains(token), "step \(step)")
                if constraint.states.allSatisfy(\.isInStringContent) { inString += 1 }
            }
            XCTAssertTrue(constraint.accept(token), "step \(step)")
        }
        XCTAssertTrue(constraint.isClosed)
        XCTAssertGreaterThan(inString, 0)
    }

    @discardableResult
    static func python(_ arguments: [String]) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3"] + arguments
        do {
            try p.run()
        } catch {
            return -1
        }
        p.waitUntilExit()
        return p.terminationStatus
    }
}
