import Foundation
@testable import GemmaConvert
import GemmaTiny
import XCTest

/// Every bad input gets a one-line error naming the file or tensor and the problem; nothing is
/// written and the input is not changed.
final class ConverterBadInputTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gt-bad-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Converts `folder`, expects failure mentioning all of `fragments`, and checks that nothing
    /// was written and the input is unchanged.
    func expectFailure(_ folder: String, _ fragments: [String], options: ConversionOptions = ConversionOptions(),
                       line: UInt = #line) throws {
        let before = FileManager.default.fileExists(atPath: folder) ? try folderChecksums(folder) : [:]
        let outDir = dir + "/out-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        XCTAssertThrowsError(try Converter.convert(checkpoint: folder, output: outDir + "/m.gtm", options: options), line: line) { error in
            let message = "\(error)"
            XCTAssertFalse(message.contains("\n"), "one line: \(message)", line: line)
            for f in fragments { XCTAssertTrue(message.contains(f), "'\(message)' should mention '\(f)'", line: line) }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: outDir), [], "nothing left behind", line: line)
        if !before.isEmpty { XCTAssertEqual(try folderChecksums(folder), before, "input unchanged", line: line) }
    }

    func make(_ edit: (inout SyntheticCheckpoint) -> Void) throws -> String {
        var c = SyntheticCheckpoint()
        edit(&c)
        let folder = dir + "/ckpt-\(UUID().uuidString)"
        try c.write(to: folder)
        return folder
    }

    func testMissingFiles() throws {
        try expectFailure(dir + "/nowhere", ["nowhere"])
        for name in ["config.json", "tokenizer.model", "model.safetensors"] {
            let folder = try make { _ in }
            try FileManager.default.removeItem(atPath: folder + "/" + name)
            try expectFailure(folder, [name])
        }
    }

    func testUnsupportedArchitecture() throws {
        try expectFailure(try make { $0.architecture = "Gemma2ForCausalLM" }, ["Gemma2ForCausalLM"])
        try expectFailure(try make { $0.architecture = "LlamaForCausalLM" }, ["unsupported architecture LlamaForCausalLM"])
    }

    func testUnsupportedDtype() throws {
        let folder = try make { c in
            c.editTensors = { list in
                list[1].dtype = "I8"
                list[1].rawBytes = [UInt8](repeating: 1, count: list[1].values.count)
            }
        }
        try expectFailure(folder, ["model.layers.0.input_layernorm.weight", "I8"])
    }

    func testShapeDisagreeingWithConfig() throws {
        let folder = try make { c in c.editTensors = { list in list[2].shape = [32, 128]; } }
        try expectFailure(folder, ["model.layers.0.self_attn.q_proj.weight", "shape"])
        try expectFailure(try make { $0.editConfig = { $0["intermediate_size"] = 96 } }, ["mlp.gate_proj", "config.json"])
    }

    func testMissingTensor() throws {
        let folder = try make { c in c.editTensors = { list in list.removeAll { $0.name == "model.norm.weight" } } }
        try expectFailure(folder, ["model.norm.weight"])
    }

    func testTruncatedSafetensors() throws {
        for keep in [4, 20, -100] {
            let folder = try make { _ in }
            let path = folder + "/model.safetensors"
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            try data.prefix(keep > 0 ? keep : data.count + keep).write(to: URL(fileURLWithPath: path))
            try expectFailure(folder, ["model.safetensors"])
        }
    }

    func testOverlappingAndOutOfRangeOffsets() throws {
        let base = SyntheticCheckpoint().tensors()
        for (label, edit): (String, (inout [String: Any]) -> Void) in [
            ("overlap", { h in
                var e = h["model.norm.weight"] as! [String: Any]
                var first = h["model.layers.0.input_layernorm.weight"] as! [String: Any]
                first["data_offsets"] = e["data_offsets"]
                e["dtype"] = "BF16"
                h["model.layers.0.input_layernorm.weight"] = first
            }),
            ("past the end", { h in
                var e = h["model.norm.weight"] as! [String: Any]
                let offsets = e["data_offsets"] as! [Int]
                e["data_offsets"] = [offsets[0] + 1_000_000, offsets[1] + 1_000_000]
                h["model.norm.weight"] = e
            }),
            ("size mismatch", { h in
                var e = h["model.norm.weight"] as! [String: Any]
                e["shape"] = [65]
                h["model.norm.weight"] = e
            }),
        ] {
            let folder = try make { _ in }
            try SyntheticCheckpoint.writeSafetensors(base, to: folder + "/model.safetensors", header: edit)
            try expectFailure(folder, ["model.safetensors"])
            _ = label
        }
    }

    func testNonFiniteWeightsNameTheTensor() throws {
        for bad in [Float.nan, .infinity, -.infinity] {
            let folder = try make { c in c.editTensors = { list in list[7].values[5] = bad } }
            try expectFailure(folder, ["model.layers.0.mlp.gate_proj.weight", "NaN or infinite", "element 5"])
        }
    }

    func testBadConfigValues() throws {
        try expectFailure(try make { $0.editConfig = { $0["hidden_size"] = "big" } }, ["config.json", "hidden_size"])
        try expectFailure(try make { $0.editConfig = { $0["num_key_value_heads"] = 3 } }, ["config.json", "num_key_value_heads"])
        try expectFailure(try make { $0.editConfig = { $0["tie_word_embeddings"] = false } }, ["tie_word_embeddings"])
        let folder = try make { _ in }
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: folder + "/config.json"))
        try expectFailure(folder, ["config.json", "JSON"])
    }

    func testCorruptTokenizer() throws {
        let folder = try make { _ in }
        try Data([0xFF, 0xFF, 0xFF, 0x01, 0x02]).write(to: URL(fileURLWithPath: folder + "/tokenizer.model"))
        try expectFailure(folder, ["tokenizer.model"])
    }

    /// A tokenizer.model the runtime's tokenizer would refuse (here `<unk>` typed CONTROL, so no
    /// piece is UNKNOWN; SentencePiece refuses it too) is refused at conversion with the runtime's
    /// message: the converter never writes a file the runtime cannot open.
    func testTokenizerTheRuntimeRefusesIsRefused() throws {
        let folder = try make { _ in }
        let path = folder + "/tokenizer.model"
        try Data(try SyntheticCheckpoint.fixtureTokenizer(retyping: "<unk>", to: 3)).write(to: URL(fileURLWithPath: path))
        let (vocabulary, settings) = try SentencePieceModelReader.read(path: path)
        var runtimeMessage = ""
        XCTAssertThrowsError(try Tokenizer(vocabulary: vocabulary, settings: settings)) { runtimeMessage = "\($0)" }
        XCTAssertEqual(runtimeMessage, "invalid tokenizer vocabulary: no UNKNOWN piece")
        try expectFailure(folder, ["\(path): \(runtimeMessage)"])
        // The fixture as it is converts.
        try SyntheticCheckpoint().write(to: folder + "-good")
        XCTAssertNoThrow(try Converter.convert(checkpoint: folder + "-good", output: dir + "/good.gtm", options: ConversionOptions()))
    }

    /// SentencePiece accepts bos_id -1 (no BOS); so do the converter, the model file and the
    /// tokenizer, by one rule (TokenizerSettings.idProblem): the file converts, opens, and its
    /// chat prompt starts without a BOS. An id past the vocabulary is refused before writing.
    func testBosMinusOneConvertsIntoAFileThatOpens() throws {
        let folder = try make { _ in }
        let path = folder + "/tokenizer.model"
        try Data(try SyntheticCheckpoint.fixtureTokenizer(trainerSpecField: 41, setTo: -1)).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try SentencePieceModelReader.read(path: path).1.bosId, -1)
        let output = dir + "/no-bos.gtm"
        _ = try Converter.convert(checkpoint: folder, output: output, options: ConversionOptions())
        let file = try ModelFile(path: output)
        XCTAssertEqual(file.metadata.tokenizer.bosId, -1)
        let tokenizer = try Tokenizer(vocabulary: file.vocabulary, settings: file.metadata.tokenizer)
        let prompt = try GemmaChatTemplate.tokens(for: [.user("hi")], tokenizer: tokenizer)
        XCTAssertEqual(prompt.first, tokenizer.id(of: "<start_of_turn>"))

        try Data(try SyntheticCheckpoint.fixtureTokenizer(trainerSpecField: 42, setTo: 1 << 20)).write(to: URL(fileURLWithPath: path))
        try expectFailure(folder, ["\(path): invalid tokenizer vocabulary: eos_id 1048576 is outside the vocabulary of"])
    }

    func testExistingOutputNeedsOverwrite() throws {
        let folder = try make { _ in }
        let output = dir + "/exists.gtm"
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: output))
        XCTAssertThrowsError(try Converter.convert(checkpoint: folder, output: output, options: ConversionOptions())) { error in
            XCTAssertTrue("\(error)".contains("--force"), "\(error)")
        }
        XCTAssertEqual(try String(contentsOfFile: output, encoding: .utf8), "keep me")
        _ = try Converter.convert(checkpoint: folder, output: output, options: ConversionOptions(overwrite: true))
        XCTAssertNoThrow(try ModelFile(path: output))
    }

    func testBadOptions() throws {
        let folder = try make { _ in }
        try expectFailure(folder, ["--zstd-level"], options: ConversionOptions(zstdLevel: 40))
    }
}
