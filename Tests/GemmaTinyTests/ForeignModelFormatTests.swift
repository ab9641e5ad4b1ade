import Foundation
@testable import GemmaTiny
import XCTest

/// A GGUF file, a safetensors file or a Hugging Face folder given where a gemma-tiny model file
/// belongs: the error names the format and the gemma-quantize command that converts it.
final class ForeignModelFormatTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gt-foreign-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func openError(_ path: String) -> ModelFileError? {
        do {
            _ = try ModelFile(path: path)
            return nil
        } catch {
            return error
        }
    }

    /// The fixtures as people download them: a GGUF, and a checkpoint folder and its safetensors.
    func testRealFixtures() throws {
        let gguf = ModelFixtures.repoRoot.appendingPathComponent("fixtures/gguf/tiny-gemma3-kquant.gguf").path
        XCTAssertEqual(openError(gguf), .foreignFormat(path: gguf, format: .gguf))
        let folder = ModelFixtures.checkpoint("tiny-gemma")
        XCTAssertEqual(openError(folder), .foreignFormat(path: folder, format: .huggingFaceFolder))
        let weights = folder + "/model.safetensors"
        XCTAssertEqual(openError(weights), .foreignFormat(path: weights, format: .safetensors))
        XCTAssertEqual(openError(folder + "/config.json"), .notAModelFile(path: folder + "/config.json"))
    }

    func testCommandsConvertBesideTheSource() {
        XCTAssertEqual(ModelFileError.foreignFormat(path: "m/gemma-3-1b.Q4_K_M.gguf", format: .gguf).description,
                       "m/gemma-3-1b.Q4_K_M.gguf is a GGUF file, not a gemma-tiny model file; convert it once with: "
                           + "gemma-quantize m/gemma-3-1b.Q4_K_M.gguf -o m/gemma-3-1b.Q4_K_M.gtm")
        XCTAssertEqual(ForeignModelFormat.huggingFaceFolder.conversionCommand(for: "/models/gemma-2b/"),
                       "gemma-quantize /models/gemma-2b -o /models/gemma-2b.gtm")
        XCTAssertEqual(ForeignModelFormat.safetensors.conversionCommand(for: "/models/gemma-2b/model-00001-of-00002.safetensors"),
                       "gemma-quantize /models/gemma-2b -o /models/gemma-2b.gtm")
        XCTAssertEqual(ForeignModelFormat.safetensors.conversionCommand(for: "model.safetensors"), "gemma-quantize . -o model.gtm")
        XCTAssertEqual(ForeignModelFormat.gguf.conversionCommand(for: "my models/it's.gguf"),
                       "gemma-quantize 'my models/it'\\''s.gguf' -o 'my models/it'\\''s.gtm'")
    }

    /// Only a plausible safetensors header counts: its length must fit the file.
    func testSafetensorsHeaderMustFitTheFile() throws {
        func file(_ name: String, length: UInt64, json: String) throws -> String {
            var bytes = withUnsafeBytes(of: length.littleEndian) { Array($0) }
            bytes += Array(json.utf8)
            let path = dir + "/" + name
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return path
        }
        let good = try file("good.safetensors", length: 2, json: "{}")
        XCTAssertEqual(openError(good), .foreignFormat(path: good, format: .safetensors))
        let long = try file("long.safetensors", length: 100, json: "{}")
        XCTAssertEqual(openError(long), .notAModelFile(path: long))
        let shortGGUF = dir + "/short.gguf"
        try Data("GGU".utf8).write(to: URL(fileURLWithPath: shortGGUF))
        XCTAssertEqual(openError(shortGGUF), .notAModelFile(path: shortGGUF))
        XCTAssertEqual(openError(dir), .cannotOpen(path: dir, reason: "not a regular file"))  // a folder without config.json
    }

    func testCLIPrintsTheCommand() throws {
        let gguf = ModelFixtures.repoRoot.appendingPathComponent("fixtures/gguf/tiny-gemma3-bf16.gguf").path
        let o = try GemmaTinyCLI.run(["run", "-m", gguf, "-p", "hi", "-n", "1"])
        GemmaTinyCLI.assertOneLineError(o, contains: "is a GGUF file, not a gemma-tiny model file; convert it once with: gemma-quantize ")
        XCTAssertEqual(o.stdout, "")
    }
}
