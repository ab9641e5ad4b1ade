import Foundation
@testable import GemmaTiny
import XCTest

/// The one list of a model's tensors (`ModelSchema`) that the loader, the converter's tensor plan
/// and its GGUF importer read.
final class ModelSchemaTests: XCTestCase {
    func temp(_ name: String) -> String { ModelFixtures.tempDir + "/\(UUID().uuidString)-\(name)" }

    /// Each architecture's layer, spelled out here independently of the schema.
    func testLayerTensorsOfEachArchitecture() {
        let gemma1 = ["input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                      "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
        let gemma2 = ["input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                      "post_attention_layernorm", "pre_feedforward_layernorm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
                      "post_feedforward_layernorm"]
        let gemma3 = ["input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                      "self_attn.q_norm", "self_attn.k_norm", "self_attn.o_proj",
                      "post_attention_layernorm", "pre_feedforward_layernorm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
                      "post_feedforward_layernorm"]
        for (architecture, names) in [(ModelArchitecture.gemma, gemma1), (.gemma2, gemma2), (.gemma3, gemma3)] {
            let kinds = ModelSchema.layerTensors(of: architecture)
            XCTAssertEqual(kinds.map(\.name), names.map { $0 + ".weight" }, "\(architecture)")
            // One tensor per role; every role but the optional norms, which come with the architecture.
            XCTAssertEqual(Set(kinds.map(\.role)).count, kinds.count, "\(architecture)")
            var roles: Set<ModelSchema.Role> = [.inputNorm, .qProj, .kProj, .vProj, .oProj, .preFeedforwardNorm,
                                                .gateProj, .upProj, .downProj]
            if architecture.hasPostNorms { roles.formUnion([.postAttentionNorm, .postFeedforwardNorm]) }
            if architecture.hasQKNorm { roles.formUnion([.qNorm, .kNorm]) }
            XCTAssertEqual(Set(kinds.map(\.role)), roles, "\(architecture)")
        }
        XCTAssertEqual(ModelArchitecture.allCases.filter(\.hasPostNorms), [.gemma2, .gemma3])
        XCTAssertEqual(ModelArchitecture.allCases.filter(\.hasQKNorm), [.gemma3])
        // Gemma 1's norm before the MLP has the name Gemma 2 and 3 give the one after attention.
        XCTAssertEqual(ModelSchema.layerTensors(of: .gemma).first { $0.role == .preFeedforwardNorm }?.name,
                       "post_attention_layernorm.weight")
    }

    /// The schema lists a converted file's tensors, names, shapes and order, for each architecture.
    func testTensorsOfAConfigAreTheFileTensorsInOrder() throws {
        for name in ["tiny-gemma", "tiny-gemma2", "tiny-gemma3", "tiny-gemma-mha"] {
            let file = try ModelFile(path: try ModelFixtures.convertedPath(name, .bf16))
            let planned = ModelSchema.tensors(config: file.metadata.config)
            XCTAssertEqual(planned.map(\.name), file.tensors.map(\.name), name)
            XCTAssertEqual(planned.map(\.shape), file.tensors.map(\.shape), name)
            XCTAssertEqual(planned.filter(\.kind.isNorm).map(\.name), file.tensors.filter { $0.type == .f32 }.map(\.name), name)
            XCTAssertEqual(planned.first?.layer, nil)
            XCTAssertEqual(planned.last?.layer, nil)
            XCTAssertEqual(Set(planned.compactMap(\.layer)), Set(0..<file.metadata.config.numHiddenLayers), name)
        }
    }

    /// llama.cpp's names lead back to the architecture's own tensor; names of another
    /// architecture, or not in the form `blk.N.<name>.weight`, to nothing.
    func testGGUFNames() throws {
        for architecture in ModelArchitecture.allCases {
            for kind in ModelSchema.layerTensors(of: architecture) {
                let found = try XCTUnwrap(ModelSchema.kind(ggufName: "blk.17.\(kind.ggufName)", architecture: architecture))
                XCTAssertEqual(found.kind, kind)
                XCTAssertEqual(found.layer, 17)
            }
            for kind in ModelSchema.layer where !kind.architectures.contains(architecture)
                && !ModelSchema.layerTensors(of: architecture).contains(where: { $0.ggufName == kind.ggufName }) {
                XCTAssertNil(ModelSchema.kind(ggufName: "blk.0.\(kind.ggufName)", architecture: architecture), kind.ggufName)
            }
            XCTAssertEqual(ModelSchema.kind(ggufName: "token_embd.weight", architecture: architecture)?.kind, ModelSchema.embedding)
            XCTAssertEqual(ModelSchema.kind(ggufName: "output_norm.weight", architecture: architecture)?.kind, ModelSchema.finalNorm)
            for bad in ["blk.01.attn_q.weight", "blk.-1.attn_q.weight", "blk.+1.attn_q.weight", "blk..attn_q.weight",
                        "blk.0.attn_q.bias", "blk.0.attn_q", "blk.0.attn_q.weight.weight", "attn_q.weight", "output.weight"] {
                XCTAssertNil(ModelSchema.kind(ggufName: bad, architecture: architecture), bad)
            }
        }
    }

    /// The query/key norms come with the architecture: a Gemma 2 file that asks for them is
    /// refused (its tensors would not be loaded).
    func testGemma2WithQKNormIsRefused() throws {
        let path = temp("gemma2-qk.gtm")
        try ModelFileRewriter.rewrite(try ModelFixtures.convertedPath("tiny-gemma2", .bf16), to: path,
                                      metadata: { $0.config.useQKNorm = true })
        XCTAssertThrowsError(try GemmaModel.load(path: path)) { error in
            XCTAssertEqual(error as? ModelError,
                           .unsupportedConfiguration("gemma2 model with use_qk_norm (Gemma 3's query/key norms)"))
        }
    }
}
