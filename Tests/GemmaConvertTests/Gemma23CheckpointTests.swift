import Foundation
@testable import GemmaConvert
import GemmaKernels
import GemmaQuantizeKernels
import GemmaTiny
import XCTest

/// Gemma 2 and Gemma 3 (text) checkpoints: config.json in transformers 4.x and 5.x styles,
/// the extra tensors, and the configuration the runtime gets.
final class Gemma23CheckpointTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gt-g23-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    static let s = ModelConfig.slidingAttention, f = ModelConfig.fullAttention

    func config(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: GGUFFixtures.root + "/\(name)/config.json"))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func parse(_ json: [String: Any]) throws -> ModelConfig { try HFConfig.parse(json, file: "config.json").config }

    func testGemma2ConfigAsTransformers5WritesIt() throws {
        let c = try parse(try config("tiny-gemma2"))
        XCTAssertEqual(c.architecture, .gemma2)
        XCTAssertEqual(c.slidingWindow, 8)
        XCTAssertEqual(c.layerTypes, [Self.s, Self.f, Self.s, Self.f])
        XCTAssertEqual(c.attnLogitSoftcapping, 5)
        XCTAssertEqual(c.finalLogitSoftcapping, 2)
        XCTAssertEqual(c.queryPreAttnScalar, 24)
        XCTAssertEqual(c.attentionScale, Float(1 / Double(24).squareRoot()))
        XCTAssertEqual(c.ropeTheta, 10000)
        XCTAssertNil(c.ropeLocalBaseFreq)
        XCTAssertNil(c.useQKNorm)
        XCTAssertEqual(c.ropeTheta(layer: 0), 10000)
        XCTAssertEqual(c.numKeyValueHeads, 2)
        XCTAssertEqual(c.embeddingScale, 8)
    }

    func testGemma3ConfigAsTransformers5WritesIt() throws {
        let c = try parse(try config("tiny-gemma3"))
        XCTAssertEqual(c.architecture, .gemma3)
        XCTAssertEqual(c.layerTypes, [Self.s, Self.s, Self.f, Self.s])
        XCTAssertEqual(c.ropeTheta, 1_000_000)
        XCTAssertEqual(c.ropeLocalBaseFreq, 10000)
        XCTAssertEqual(c.ropeTheta(layer: 0), 10000)
        XCTAssertEqual(c.ropeTheta(layer: 2), 1_000_000)
        XCTAssertTrue(c.isSlidingLayer(3))
        XCTAssertFalse(c.isSlidingLayer(2))
        XCTAssertNil(c.attnLogitSoftcapping)
        XCTAssertNil(c.finalLogitSoftcapping)
        XCTAssertEqual(c.queryPreAttnScalar, 16)
        XCTAssertEqual(c.useQKNorm, true)
        XCTAssertEqual(c.maxPositionEmbeddings, 512)
    }

    /// Gemma 2 as transformers 4.x wrote it (google/gemma-2-2b style): no layer_types, top-level
    /// rope_theta; the alternation is derived (layer 0 sliding). Absent keys take
    /// Gemma2Config's defaults.
    func testGemma2ConfigAsTransformers4WroteIt() throws {
        var json = try config("tiny-gemma2")
        json["layer_types"] = nil
        json["rope_parameters"] = nil
        json["rope_theta"] = 10000.0
        json["cache_implementation"] = "hybrid"
        json["hidden_act"] = "gelu_pytorch_tanh"
        json["torch_dtype"] = "bfloat16"
        json["num_hidden_layers"] = 5
        XCTAssertEqual(try parse(json).layerTypes, [Self.s, Self.f, Self.s, Self.f, Self.s])
        for key in ["attn_logit_softcapping", "final_logit_softcapping", "query_pre_attn_scalar", "sliding_window"] { json[key] = nil }
        let c = try parse(json)
        XCTAssertEqual(c.attnLogitSoftcapping, 50)
        XCTAssertEqual(c.finalLogitSoftcapping, 30)
        XCTAssertEqual(c.queryPreAttnScalar, 256)
        XCTAssertEqual(c.slidingWindow, 4096)
        json["final_logit_softcapping"] = NSNull()
        XCTAssertNil(try parse(json).finalLogitSoftcapping, "null switches capping off")
    }

    /// Gemma 3 as transformers 4.5x wrote it (google/gemma-3-1b-it style): rope_theta and
    /// rope_local_base_freq at the top level, sliding_window_pattern instead of layer_types.
    func testGemma3ConfigAsTransformers4WroteIt() throws {
        var json = try config("tiny-gemma3")
        for key in ["layer_types", "rope_parameters", "_sliding_window_pattern"] { json[key] = nil }
        json["rope_theta"] = 1_000_000.0
        json["rope_local_base_freq"] = 10000.0
        json["rope_scaling"] = NSNull()
        json["sliding_window_pattern"] = 6
        json["num_hidden_layers"] = 7
        let c = try parse(json)
        XCTAssertEqual(c.layerTypes, [Self.s, Self.s, Self.s, Self.s, Self.s, Self.f, Self.s])
        XCTAssertEqual(c.ropeTheta, 1_000_000)
        XCTAssertEqual(c.ropeLocalBaseFreq, 10000)
        json["sliding_window_pattern"] = nil
        json["rope_theta"] = nil
        json["rope_local_base_freq"] = nil
        let d = try parse(json)
        XCTAssertEqual(d.layerTypes?.filter { $0 == Self.f }.count, 1, "default pattern 6")
        XCTAssertEqual(d.ropeTheta, 1_000_000, "Gemma3TextConfig's default global theta")
        XCTAssertEqual(d.ropeLocalBaseFreq, 10000)
    }

    func testRefusedConfigs() throws {
        let g3 = try config("tiny-gemma3")
        func expectRefusal(_ edit: (inout [String: Any]) -> Void, _ fragment: String, line: UInt = #line) {
            var json = g3
            edit(&json)
            XCTAssertThrowsError(try parse(json), line: line) { error in
                XCTAssertTrue("\(error)".contains(fragment), "'\(error)' should mention \(fragment)", line: line)
                XCTAssertFalse("\(error)".contains("\n"), line: line)
            }
        }
        expectRefusal({ $0["architectures"] = ["Gemma3ForConditionalGeneration"]; $0["model_type"] = "gemma3" }, "multimodal")
        expectRefusal({ $0["architectures"] = nil; $0["model_type"] = "gemma3" }, "Gemma3ForCausalLM")
        expectRefusal({ $0["architectures"] = ["Gemma3TextModel"] }, "unsupported architecture Gemma3TextModel")
        expectRefusal({ $0["use_bidirectional_attention"] = true }, "use_bidirectional_attention")
        expectRefusal({ $0["rope_parameters"] = ["full_attention": ["rope_type": "linear", "factor": 8.0, "rope_theta": 1e6],
                                                 "sliding_attention": ["rope_type": "default", "rope_theta": 1e4]] }, "linear")
        expectRefusal({ $0["rope_scaling"] = ["rope_type": "linear", "factor": 8.0] }, "rope_scaling")
        expectRefusal({ $0["layer_types"] = ["sliding_attention", "full_attention"] }, "layer_types has 2 entries")
        expectRefusal({ $0["layer_types"] = ["sliding_attention", "chunked_attention", "full_attention", "full_attention"] }, "chunked_attention")
        expectRefusal({ $0["query_pre_attn_scalar"] = -1 }, "query_pre_attn_scalar")
        expectRefusal({ $0["attention_bias"] = true }, "attention_bias")
    }

    /// The fixtures convert to files holding exactly the checkpoint's tensors, with Gemma 2/3's
    /// extra norms (and Gemma 3's q/k norms) under Hugging Face's names.
    func testFixtureCheckpointsConvertExactly() throws {
        for (name, perLayer) in [("tiny-gemma2", 11), ("tiny-gemma3", 13)] {
            let folder = GGUFFixtures.root + "/" + name
            let output = dir + "/\(name).gtm"
            let summary = try Converter.convert(checkpoint: folder, output: output, options: ConversionOptions(type: .f32, threads: 2))
            let file = try ModelLoader.open(path: output, unpack: .memory)
            XCTAssertEqual(file.tensors.count, 2 + 4 * perLayer, name)
            XCTAssertTrue(summary.notices.isEmpty, "\(summary.notices)")
            let safetensors = try SafetensorsFile(path: folder + "/model.safetensors")
            let values = try dequantizedTensors(file)
            for (tname, t) in safetensors.tensors {
                var expected = [Float](repeating: 0, count: t.elementCount)
                gt_widen_to_f32(Int32(GT_SRC_BF16), safetensors.bytes(t).baseAddress, t.elementCount, &expected)
                XCTAssertEqual(values[tname], expected, "\(name): \(tname)")
            }
            for suffix in ["post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"] {
                XCTAssertEqual(file.tensor("model.layers.3.\(suffix).weight")?.type, .f32)
            }
            XCTAssertEqual(file.tensor("model.layers.1.self_attn.q_norm.weight")?.shape, name == "tiny-gemma3" ? [16] : nil)
            XCTAssertEqual(file.metadata.provenance.sourceArchitecture, name == "tiny-gemma3" ? "Gemma3ForCausalLM" : "Gemma2ForCausalLM")
            try file.metadata.config.validate()
        }
    }

    func testMissingGemma2TensorNamesTheArchitecture() throws {
        let folder = dir + "/ckpt"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for f in ["config.json", "tokenizer.model"] {
            try FileManager.default.copyItem(atPath: GGUFFixtures.root + "/tiny-gemma2/" + f, toPath: folder + "/" + f)
        }
        let source = try SafetensorsFile(path: GGUFFixtures.root + "/tiny-gemma2/model.safetensors")
        let kept = source.tensors.values.filter { $0.name != "model.layers.2.pre_feedforward_layernorm.weight" }
        let tensors = kept.map { t in
            SyntheticCheckpoint.Tensor(name: t.name, shape: t.shape, dtype: "BF16", values: [],
                                       rawBytes: Array(source.bytes(t)))
        }
        try SyntheticCheckpoint.writeSafetensors(tensors, to: folder + "/model.safetensors")
        XCTAssertThrowsError(try Converter.convert(checkpoint: folder, output: dir + "/x.gtm", options: ConversionOptions())) {
            XCTAssertTrue("\($0)".contains("model.layers.2.pre_feedforward_layernorm.weight"), "\($0)")
            XCTAssertTrue("\($0)".contains("Gemma2ForCausalLM"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/x.gtm"))
    }

    /// Gemma 1 metadata (no Gemma 2/3 keys) still decodes, and encodes without them.
    func testModelConfigStaysCompatibleWithGemma1Files() throws {
        let json = """
        {"architecture": "gemma", "vocab_size": 256000, "hidden_size": 2048, "intermediate_size": 16384,
         "num_hidden_layers": 18, "num_attention_heads": 8, "num_key_value_heads": 1, "head_dim": 256,
         "max_position_embeddings": 8192, "rms_norm_eps": 1e-06, "rope_theta": 10000,
         "hidden_activation": "gelu_pytorch_tanh", "embedding_scale": 45.25}
        """
        let c = try JSONDecoder().decode(ModelConfig.self, from: Data(json.utf8))
        XCTAssertNil(c.layerTypes)
        XCTAssertNil(c.slidingWindow)
        XCTAssertEqual(c.attentionScale, Float(1.0 / 16.0))
        XCTAssertFalse(c.isSlidingLayer(0))
        XCTAssertEqual(c.ropeTheta(layer: 5), 10000)
        try c.validate()
        let encoded = String(decoding: try JSONEncoder().encode(c), as: UTF8.self)
        for key in ["sliding_window", "layer_types", "softcapping", "query_pre_attn_scalar", "rope_local_base_freq", "use_qk_norm"] {
            XCTAssertFalse(encoded.contains(key), "\(key) not written for Gemma 1")
        }
        var bad = c
        bad.layerTypes = [ModelConfig.slidingAttention]
        XCTAssertThrowsError(try bad.validate())
        bad.layerTypes = Array(repeating: ModelConfig.slidingAttention, count: 18)
        XCTAssertThrowsError(try bad.validate(), "sliding layers need a window")
        bad.slidingWindow = 512
        XCTAssertNoThrow(try bad.validate())
        bad.finalLogitSoftcapping = .nan
        XCTAssertThrowsError(try bad.validate())
    }
}
