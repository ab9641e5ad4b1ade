import Foundation
import GemmaKernels
@testable import GemmaConvert
@testable import GemmaTiny
import XCTest

/// The q4k default (llama.cpp's Q4_K_M mix, `TensorPlan.Policy`) from float checkpoints, its
/// fallbacks where rows are not whole 256-value super-blocks, and the lossless import of GGUF
/// Q4_K / Q6_K tensors.
final class KQuantConversionTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gt-kquant-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    static var kquantGGUF: String { GGUFFixtures.root + "/gguf/tiny-gemma3-kquant.gguf" }

    /// Gemma 1 2B: hidden 2048, 18 layers, MLP 16384, 8 heads / 1 KV head of 256, vocab 256000.
    static let gemma2B = ModelConfig(architecture: .gemma, vocabSize: 256000, hiddenSize: 2048, intermediateSize: 16384,
                                     numHiddenLayers: 18, numAttentionHeads: 8, numKeyValueHeads: 1, headDim: 256,
                                     maxPositionEmbeddings: 8192, rmsNormEps: 1e-6, ropeTheta: 10000,
                                     hiddenActivation: "gelu_pytorch_tanh", embeddingScale: 45.25)

    /// The layers whose attn_v and ffn_down llama.cpp's Q4_K_M stores as Q6_K (use_more_bits):
    /// for 18 layers the nine of Gemma 3 270M's GGUF (ffn_down Q6_K ×9).
    func testUseMoreBitsIsLlamaCpps() {
        func layers(_ n: Int) -> [Int] { (0..<n).filter { QuantizationPolicy.usesMoreBits(layer: $0, of: n) } }
        XCTAssertEqual(layers(18), [0, 1, 4, 7, 10, 13, 15, 16, 17])
        XCTAssertEqual(layers(26), [0, 1, 2, 5, 8, 11, 14, 17, 20, 22, 23, 24, 25])
        XCTAssertEqual(layers(8), [0, 3, 6, 7])
        XCTAssertEqual(layers(2), [1])
        XCTAssertEqual(layers(1), [0])
    }

    func types(_ plan: TensorPlan) -> [String: StorageType] {
        Dictionary(uniqueKeysWithValues: plan.entries.map { ($0.name, $0.type) })
    }

    /// The policy table on the 2B shape (every row a multiple of 256): q4k everywhere but the
    /// embedding and the more-bits layers' v_proj / down_proj (q6k), norms f32, no fallbacks.
    /// Prints the tensor bytes of the default and of the former q4 default.
    func testDefaultPolicyOnThe2BShape() throws {
        let moreBits: Set<Int> = [0, 1, 4, 7, 10, 13, 15, 16, 17]
        let plan = TensorPlan(config: Self.gemma2B, options: ConversionOptions())
        var counts: [StorageType: Int] = [:]
        for e in plan.entries {
            XCTAssertNil(e.note, e.name)
            counts[e.type, default: 0] += 1
            let layer = QuantizationPolicy.layerIndex(e.name)
            let expected: StorageType
            if e.shape.count == 1 {
                expected = .f32
            } else if e.name == TensorPlan.embeddingName {
                expected = .q6k
            } else if e.name.hasSuffix("v_proj.weight") || e.name.hasSuffix("down_proj.weight") {
                expected = moreBits.contains(try XCTUnwrap(layer)) ? .q6k : .q4k
            } else {
                expected = .q4k
            }
            XCTAssertEqual(e.type, expected, e.name)
        }
        XCTAssertEqual(counts[.q6k], 1 + 2 * 9)
        XCTAssertEqual(counts[.q4k], 7 * 18 - 2 * 9)

        func tensorBytes(_ options: ConversionOptions) throws -> Int {
            try TensorPlan(config: Self.gemma2B, options: options).entries.reduce(0) {
                $0 + (try XCTUnwrap(TensorInfo.expectedLength(type: $1.type, shape: $1.shape)))
            }
        }
        let q4k = try tensorBytes(ConversionOptions())
        let q4 = try tensorBytes(ConversionOptions(type: .q4))
        let pure = try tensorBytes(ConversionOptions(pure: true))
        print(String(format: "GEMMA-2B-SHAPE tensor bytes: q4k default %.4f GB, q4k --pure %.4f GB, q4 (former default) %.4f GB",
                     Double(q4k) / 1e9, Double(pure) / 1e9, Double(q4) / 1e9))
        XCTAssertLessThanOrEqual(q4k, 1_630_000_000, "llama.cpp's Q4_K_M of the 2B is 1.63 GB")
        XCTAssertLessThan(q4k, q4)
        XCTAssertLessThan(pure, q4k)
    }

    /// Rows that are not whole super-blocks (the synthetic checkpoint's hidden 64, MLP 128) fall
    /// back as llama.cpp does: q4k -> q5, q6k -> q8, with a note each; the file needs no K type
    /// (version 2, for q5), opens and generates.
    func testFallbacksWhereRowsAreNotWholeSuperBlocks() throws {
        let folder = dir + "/ckpt"
        _ = try SyntheticCheckpoint().write(to: folder)
        let output = dir + "/fallback.gtm"
        let summary = try Converter.convert(checkpoint: folder, output: output, options: ConversionOptions(threads: 2))
        let file = try ModelFile(path: output)
        XCTAssertEqual(file.header.version, 2)
        XCTAssertEqual(file.metadata.quantization.type, .q4k)
        // The embedding's rows (64) fall back too, and the metadata says what was written.
        XCTAssertEqual(file.tensor(TensorPlan.embeddingName)?.type, .q8)
        XCTAssertEqual(file.metadata.quantization.embeddingType, .q8)
        // Two layers: only layer 1 uses more bits (i >= 7n/8).
        for t in file.tensors {
            let expected: StorageType
            if t.shape.count == 1 {
                expected = .f32
            } else if t.name == TensorPlan.embeddingName
                        || t.name.hasPrefix("model.layers.1.") && (t.name.hasSuffix("v_proj.weight") || t.name.hasSuffix("down_proj.weight")) {
                expected = .q8
            } else {
                expected = .q5
            }
            XCTAssertEqual(t.type, expected, t.name)
            if t.shape.count == 2 {
                let wanted = expected == .q8 ? "q6k" : "q4k"
                XCTAssertTrue(summary.notices.contains("\(t.name): row length \(t.shape[1]) is not a multiple of 256: stored as \(expected) instead of \(wanted)"),
                              "\(t.name): \(summary.notices)")
            }
        }
        try generate(output)
    }

    /// 256-multiple rows: the mix itself, through the converter, with the K quantizers; version
    /// 3; values close to the source; --pure puts every matrix at q4k.
    func testKQuantMixFromAFloatCheckpoint() throws {
        var c = SyntheticCheckpoint()
        (c.hidden, c.intermediate, c.heads, c.headDim, c.layers) = (256, 512, 2, 128, 8)
        let folder = dir + "/ckpt256"
        let source = try c.write(to: folder)
        let output = dir + "/mix.gtm"
        let summary = try Converter.convert(checkpoint: folder, output: output, options: ConversionOptions(threads: 2, report: true))
        let file = try ModelFile(path: output)
        XCTAssertEqual(file.header.version, 3)
        let moreBits: Set<Int> = [0, 3, 6, 7]
        for t in file.tensors where t.shape.count == 2 {
            let layer = QuantizationPolicy.layerIndex(t.name)
            let wide = t.name == TensorPlan.embeddingName
                || (t.name.hasSuffix("v_proj.weight") || t.name.hasSuffix("down_proj.weight")) && moreBits.contains(layer ?? -1)
            XCTAssertEqual(t.type, wide ? .q6k : .q4k, t.name)
        }
        XCTAssertTrue(summary.notices.isEmpty, "\(summary.notices)")
        for r in summary.tensors where r.shape.count == 2 {
            let err = try XCTUnwrap(r.relativeRMSError)
            XCTAssertGreaterThan(err, 0, r.name)
            XCTAssertLessThan(err, r.type == .q6k ? 0.03 : 0.12, "\(r.name) as \(r.type)")
        }
        XCTAssertEqual(source.filter { $0.shape.count == 2 && !TensorPlan.isIgnorable($0.name) }.count, summary.tensors.filter { $0.shape.count == 2 }.count)
        try generate(output)

        let pureOut = dir + "/pure.gtm"
        let pure = try Converter.convert(checkpoint: folder, output: pureOut, options: ConversionOptions(threads: 2, pure: true))
        for r in pure.tensors where r.shape.count == 2 {
            XCTAssertEqual(r.type, r.name == TensorPlan.embeddingName ? .q6k : .q4k, r.name)
        }
        let q4 = try Converter.convert(checkpoint: folder, output: dir + "/q4.gtm", options: ConversionOptions(type: .q4, threads: 2))
        XCTAssertEqual(try ModelFile(path: q4.outputPath).header.version, 1, "--type q4 is the old policy: no K type")
        XCTAssertLessThan(pure.tensorBytes, summary.tensorBytes)
    }

    /// The GGUF's Q4_K and Q6_K tensors become q4k and q6k with the very same bytes; the other
    /// quantized matrices (Q5_0, Q8_0, the embedding included) come through exactly too, so the
    /// file holds the GGUF's weights unchanged. `--type q4` keeps mapping them to q5.
    func testGGUFKQuantImportIsLossless() throws {
        let gguf = try GGUFFile(path: Self.kquantGGUF)
        let output = dir + "/k.gtm"
        let summary = try Converter.convert(checkpoint: Self.kquantGGUF, output: output, options: ConversionOptions(threads: 2, report: true))
        let file = try ModelLoader.open(path: output, unpack: .memory)
        XCTAssertEqual(file.header.version, 3)
        let hfNames = try GGUFCheckpoint(path: Self.kquantGGUF).tensors
        var copied: [String: Int] = [:]
        for (name, t) in hfNames where t.dims.count == 2 {
            let stored = try XCTUnwrap(file.tensor(name), name)
            let expected: StorageType? = ["Q4_K": .q4k, "Q6_K": .q6k, "Q5_0": .q5, "Q8_0": .q8][t.type.name]
            XCTAssertEqual(stored.type, expected, "\(name) from \(t.type)")
            XCTAssertEqual(summary.tensors.first { $0.name == name }?.relativeRMSError, 0, "\(name) from \(t.type) is exact")
            if stored.type.isKQuant {
                XCTAssertTrue(try file.data(stored).elementsEqual(gguf.bytes(t)), "\(name): the GGUF's bytes")
                copied[t.type.name, default: 0] += 1
            }
        }
        XCTAssertEqual(copied, ["Q4_K": 2, "Q6_K": 2])
        XCTAssertTrue(summary.notices.contains { $0.contains("already quantized") }, "\(summary.notices)")

        let q4 = try Converter.convert(checkpoint: Self.kquantGGUF, output: dir + "/k-q4.gtm", options: ConversionOptions(type: .q4, threads: 2))
        for r in q4.tensors {
            guard let t = hfNames[r.name], ["Q4_K", "Q6_K"].contains(t.type.name) else { continue }
            XCTAssertEqual(r.type, .q5, "\(r.name): --type q4 maps \(t.type) to q5 as before")
        }
        XCTAssertEqual(try ModelFile(path: dir + "/k-q4.gtm").header.version, 2)
    }

    /// The imported K file runs: the runtime's q4k / q6k kernels on the GGUF's blocks.
    func testGGUFKQuantFileGenerates() throws {
        let output = dir + "/k.gtm"
        _ = try Converter.convert(checkpoint: Self.kquantGGUF, output: output, options: ConversionOptions(threads: 2))
        try generate(output)
    }

    /// The command line: q4k is the default; new types in --type and --embedding-type; the
    /// tensor types are printed; an unknown type is a one-line error.
    func testCLIDefaultIsQ4K() throws {
        let out = dir + "/cli.gtm"
        let r = try runQuantize([Self.kquantGGUF, "-o", out, "--embedding-type", "q6k"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("tensor types: f32 ×"), r.stdout)
        XCTAssertTrue(r.stdout.contains("q4k ×2, q6k ×"), r.stdout)
        let inspect = try runQuantize(["inspect", out])
        XCTAssertTrue(inspect.stdout.contains("\"type\" : \"q4k\""), inspect.stdout)
        // Its 64-value rows are not whole super-blocks: q6k falls back to q8, and the metadata says so.
        XCTAssertTrue(inspect.stdout.contains("\"embedding_type\" : \"q8\""), inspect.stdout)
        XCTAssertEqual(try runQuantize(["verify", out]).status, 0)
        let bad = try runQuantize([Self.kquantGGUF, "-o", dir + "/bad.gtm", "--type", "q3k"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("q3k"), bad.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/bad.gtm"))
    }

    /// Loads `path`, prefills a few tokens and decodes greedily: finite logits, ids in range.
    func generate(_ path: String, line: UInt = #line) throws {
        let model = try GemmaModel.load(path: path, unpack: .memory)
        let session = try InferenceSession(model: model, contextLength: 16)
        try session.prefill([2, 100, 200, 300])
        for _ in 0..<4 {
            let logits = session.logits
            XCTAssertTrue(logits.allSatisfy { $0.isFinite }, "finite logits", line: line)
            let next = logits.indices.max { logits[$0] < logits[$1] }!
            XCTAssertLessThan(next, model.vocabularySize, line: line)
            try session.forward(token: next)
        }
    }
}
