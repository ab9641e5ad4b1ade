import Foundation
import GemmaKernels
@testable import GemmaConvert
import GemmaTiny
import XCTest

/// Converting GGUF files: the same model file as from the Hugging Face checkpoint they came
/// from (the tokenizer as llama.cpp has it), gguf-py's dequantized values, llama.cpp's
/// per-architecture conventions.
final class GGUFImportTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gt-gguf-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func convert(_ input: String, _ options: ConversionOptions = ConversionOptions(type: .f32, compression: .never))
        throws -> (ConversionSummary, ModelFile) {
        let output = dir + "/\(UUID().uuidString).gtm"
        let summary = try Converter.convert(checkpoint: input, output: output, options: options)
        return (summary, try ModelLoader.open(path: output, unpack: .memory))
    }

    /// tiny-gemma3 as a BF16 GGUF gives, at --type f32, exactly the model file of its Hugging Face
    /// checkpoint (configuration, every tensor bit for bit, norm weights included: the +1 comes
    /// off exactly), but for the tokenizer, which is llama.cpp's.
    func testGemma3GGUFEqualsItsCheckpoint() throws {
        let (_, fromHF) = try convert(GGUFFixtures.root + "/tiny-gemma3")
        let (summary, fromGGUF) = try convert(GGUFFixtures.gemma3)
        XCTAssertEqual(fromGGUF.metadata.config, fromHF.metadata.config)
        // The tokenizer is llama.cpp's version of the same vocabulary: the same pieces, with the
        // GGUF's types and scores and llama.cpp's semantics (testVocabularyIsTokenizerModelAsLlamaCppHasIt).
        var tokenizer = fromHF.metadata.tokenizer
        tokenizer.semantics = .llamaCpp
        XCTAssertEqual(fromGGUF.metadata.tokenizer, tokenizer)
        XCTAssertEqual(fromGGUF.vocabulary.pieces, fromHF.vocabulary.pieces)
        XCTAssertEqual(fromGGUF.tensors.map(\.name), fromHF.tensors.map(\.name), "same plan, same order")
        XCTAssertEqual(fromGGUF.tensors.map(\.shape), fromHF.tensors.map(\.shape))
        XCTAssertEqual(fromGGUF.tensors.map(\.checksum), fromHF.tensors.map(\.checksum), "identical tensor bytes")
        XCTAssertEqual(fromGGUF.metadata.provenance.sourceFormat, "gguf")
        XCTAssertEqual(fromGGUF.metadata.provenance.sourceArchitecture, "gemma3")
        XCTAssertEqual(fromGGUF.metadata.provenance.sourceDtype, "gguf MOSTLY_BF16: BF16 ×29, F32 ×25")
        XCTAssertEqual(fromGGUF.metadata.provenance.sourceFiles.map(\.name), ["tiny-gemma3-bf16.gguf"])
        XCTAssertTrue(summary.notices.isEmpty, "\(summary.notices)")
        let c = fromGGUF.metadata.config
        XCTAssertEqual(c.layerTypes, ["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"])
        XCTAssertEqual(c.ropeTheta, 1_000_000)
        XCTAssertEqual(c.ropeLocalBaseFreq, 10000)
        XCTAssertEqual(c.useQKNorm, true)
        XCTAssertNotNil(fromGGUF.tensor("model.layers.3.self_attn.k_norm.weight"))
    }

    /// The vocabulary is tokenizer.model as llama.cpp's tokenizer has it once converted and
    /// loaded, because a GGUF model encodes text as llama.cpp does (`semantics: "llama.cpp"`):
    /// - pieces and ids are tokenizer.model's (the GGUF writes user-defined spaces as spaces;
    ///   the import writes them ▁ again, like every piece in the model file);
    /// - types are the GGUF's: `<mask>`, `<2mass>`, `[@BOS@]` and `<unusedN>` stay CONTROL,
    ///   which llama.cpp's converter made them because they look special (tokenizer.model has
    ///   them USER_DEFINED), so plain text spells them out as llama.cpp does; only `<unk>`
    ///   (CONTROL in the GGUF) is UNKNOWN, which llama.cpp's encoder treats the same;
    /// - scores are the GGUF's: -1000 for every control, unknown and user-defined piece
    ///   (SentencePiece gives them 0; llama.cpp's BPE can merge into a control piece and orders
    ///   merges by score).
    /// Before llama.cpp's semantics the import restored tokenizer.model exactly (types and
    /// scores too); that tokenized `<mask>` in plain text as one piece, unlike llama.cpp.
    func testVocabularyIsTokenizerModelAsLlamaCppHasIt() throws {
        let (expected, settings) = try SentencePieceModelReader.read(path: GGUFFixtures.tokenizer)
        var llamaCppSettings = settings
        llamaCppSettings.semantics = .llamaCpp
        let looksSpecial: Set = ["<mask>", "<2mass>", "[@BOS@]", "<unused0>", "<unused1>"]
        XCTAssertEqual(looksSpecial.map { expected.types[expected.pieces.firstIndex(of: $0)!] }, Array(repeating: .userDefined, count: 5))
        for path in [GGUFFixtures.gemma3, GGUFFixtures.gemma2] {
            let gguf = try GGUFCheckpoint(path: path)
            XCTAssertEqual(gguf.tokenizerSettings, llamaCppSettings, path)
            XCTAssertEqual(gguf.vocabulary.pieces, expected.pieces)
            for i in 0..<expected.count {
                let piece = expected.pieces[i], type = expected.types[i]
                XCTAssertEqual(gguf.vocabulary.types[i], looksSpecial.contains(piece) ? .control : type, "type of \(piece)")
                let added = type == .control || type == .userDefined || type == .unknown
                XCTAssertEqual(gguf.vocabulary.scores[i], added ? -1000 : expected.scores[i], "score of \(piece)")
            }
            // What the file itself says, for the record.
            let raw = try GGUFFile(path: path).metadata
            let tokens = try XCTUnwrap(raw["tokenizer.ggml.tokens"]?.array)
            XCTAssertEqual(tokens[12], .string("    "), "llama.cpp writes user-defined spaces literally")
            XCTAssertEqual(raw["tokenizer.ggml.token_type"]?.array?[3], .int32(3), "<unk> as CONTROL")
        }
    }

    /// The import rules on a small vocabulary: types and scores as in the GGUF (llama.cpp's), ▁
    /// for spaces in user-defined pieces, `<unk>` UNKNOWN, llama.cpp's load-time overrides.
    func testVocabularyImportRules() throws {
        var notices: [String] = []
        let bytes = (0..<256).map { String(format: "<0x%02X>", $0) }
        let tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<unused12>", "  ", "a b", "\u{2581}x", "<unusedX>", "<start_of_turn>",
                      "</s>", "<|im_end|>", "<|fim_prefix|>", "<PRE>", "<|fim_suffix|>", "<|file_sep|>"] + bytes
        let meta: [String: GGUFValue] = [
            "tokenizer.ggml.model": .string("llama"),
            "tokenizer.ggml.tokens": .array(.string, tokens.map { .string($0) }),
            "tokenizer.ggml.scores": .array(.float32, ([-1000, -1000, -1000, -1000, -1000, -1000, -1000, -3, -1000, -1000, -1000, -4, -5, -6, -7, -8]
                                                        + Array(repeating: 0, count: 256)).map { .float32($0) }),
            "tokenizer.ggml.token_type": .array(.int32, ([3, 3, 3, 3, 3, 4, 4, 1, 3, 3, 4, 1, 4, 1, 1, 4] + Array(repeating: 6, count: 256)).map { .int32($0) }),
            "tokenizer.ggml.unknown_token_id": .uint32(3),
            "tokenizer.ggml.bos_token_id": .uint32(2),
            "tokenizer.ggml.eos_token_id": .uint32(1),
            "tokenizer.ggml.padding_token_id": .uint32(0),
            "tokenizer.ggml.add_space_prefix": .bool(false),
            "tokenizer.ggml.suffix_token_id": .uint32(14),
        ]
        let (v, s) = try GGUFCheckpoint.vocabulary(meta, file: "x.gguf", notices: &notices)
        XCTAssertEqual(Array(v.pieces.prefix(16)), ["<pad>", "<eos>", "<bos>", "<unk>", "<unused12>", "\u{2581}\u{2581}", "a\u{2581}b", "\u{2581}x",
                                                    "<unusedX>", "<start_of_turn>", "</s>", "<|im_end|>", "<|fim_prefix|>", "<PRE>",
                                                    "<|fim_suffix|>", "<|file_sep|>"])
        XCTAssertEqual(Array(v.types.prefix(16)), [
            .control, .control, .control, .unknown, .control, .userDefined, .userDefined, .normal, .control, .control,
            .control,  // </s> ends generation: llama.cpp makes it CONTROL (Gemma 3's GGUF has it USER_DEFINED)
            .control,  // <|im_end|> too, NORMAL in the GGUF
            .control,  // the fill-in-the-middle prefix, found by its text: the lowest id of the candidates ...
            .normal,   // ... so <PRE> stays NORMAL
            .normal,   // the suffix id is given (tokenizer.ggml.suffix_token_id), so no text is looked for
            .control,  // <|file_sep|>, the separator
        ])
        XCTAssertEqual(Array(v.scores.prefix(16)), [-1000, -1000, -1000, -1000, -1000, -1000, -1000, -3, -1000, -1000, -1000, -4, -5, -6, -7, -8])
        XCTAssertEqual(s.unkId, 3)
        XCTAssertEqual(s.padId, 0)
        XCTAssertTrue(s.byteFallback)
        XCTAssertFalse(s.addDummyPrefix)
        XCTAssertEqual(s.semantics, .llamaCpp)
        XCTAssertTrue(notices.isEmpty)

        // llama.cpp matches a user-defined token's text literally; the file writes spaces ▁.
        var literal = meta
        literal["tokenizer.ggml.token_type"] = .array(.int32, ([3, 3, 3, 3, 3, 4, 4, 4, 3, 3, 4, 1, 4, 1, 1, 4] + Array(repeating: 6, count: 256)).map { .int32($0) })
        XCTAssertThrowsError(try GGUFCheckpoint.vocabulary(literal, file: "x.gguf", notices: &notices)) {
            XCTAssertTrue("\($0)".contains("user-defined token 7") && "\($0)".contains("U+2581"), "\($0)")
        }
        // A vocabulary the tokenizer refuses is refused here, not when the model file is loaded:
        // "  " (user-defined) becomes "▁▁", the text of another token.
        var twice = meta
        twice["tokenizer.ggml.tokens"] = .array(.string, tokens.enumerated().map { .string($0.offset == 7 ? "\u{2581}\u{2581}" : $0.element) })
        XCTAssertThrowsError(try GGUFCheckpoint.vocabulary(twice, file: "x.gguf", notices: &notices)) {
            XCTAssertTrue("\($0)".contains("defined twice"), "\($0)")
        }

        var gpt2 = meta
        gpt2["tokenizer.ggml.model"] = .string("gpt2")
        XCTAssertThrowsError(try GGUFCheckpoint.vocabulary(gpt2, file: "x.gguf", notices: &notices)) {
            XCTAssertTrue("\($0)".contains("gpt2"), "\($0)")
        }
        var badType = meta
        badType["tokenizer.ggml.token_type"] = .array(.int32, ([3, 3, 3, 3, 3, 4, 4, 1, 3, 9, 4, 1, 4, 1, 1, 4] + Array(repeating: 6, count: 256)).map { .int32($0) })
        XCTAssertThrowsError(try GGUFCheckpoint.vocabulary(badType, file: "x.gguf", notices: &notices)) {
            XCTAssertTrue("\($0)".contains("token_type[9]"), "\($0)")
        }
        var short = meta
        short["tokenizer.ggml.scores"] = .array(.float32, [.float32(0)])
        XCTAssertThrowsError(try GGUFCheckpoint.vocabulary(short, file: "x.gguf", notices: &notices))
        var badId = meta
        badId["tokenizer.ggml.bos_token_id"] = .uint32(272)
        XCTAssertThrowsError(try GGUFCheckpoint.vocabulary(badId, file: "x.gguf", notices: &notices)) {
            XCTAssertTrue("\($0)".contains("bos_token_id"), "\($0)")
        }
    }

    /// The mixed-type Gemma 2 file: every tensor equals gguf-py's dequantization (checksums of
    /// the f32 bytes), the quantized weights stay close to the checkpoint's, and the
    /// configuration is the checkpoint's except what GGUF cannot say.
    func testGemma2MixedQuantTypesMatchGGUFPy() throws {
        let (_, file) = try convert(GGUFFixtures.gemma2)
        let golden = try XCTUnwrap(try GGUFFixtures.goldens()["tiny-gemma2-mixed"] as? [String: Any])
        let expected = try XCTUnwrap(golden["tensors"] as? [String: [String: Any]])
        let values = try dequantizedTensors(file)
        XCTAssertEqual(Set(values.keys), Set(expected.keys))
        var types = Set<String>()
        for (name, e) in expected {
            let v = try XCTUnwrap(values[name], name)
            XCTAssertEqual(GGUFFixtures.fnv1a64(v), e["fnv1a64_f32"] as? String, "\(name) (\(e["type"]!)) differs from gguf-py")
            XCTAssertEqual(Array(v.prefix(4)), (e["first"] as? [Double])?.map { Float($0) }, name)
            types.insert(e["type"] as! String)
        }
        XCTAssertEqual(types, ["F32", "F16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"])

        let (_, hf) = try convert(GGUFFixtures.root + "/tiny-gemma2")
        let reference = try dequantizedTensors(hf)
        for (name, v) in values {
            let err = relativeRMSError(reference[name]!, v)
            if name.hasSuffix("norm.weight") || expected[name]?["type"] as? String == "F16" {
                XCTAssertEqual(v, reference[name], "\(name) is exact")
            } else {
                XCTAssertLessThan(err, 0.15, "\(name): \(expected[name]!["type"]!) is a quantization of the checkpoint's weights")
            }
        }
        var config = file.metadata.config
        XCTAssertEqual(config.queryPreAttnScalar, 16, "llama.cpp: 1/sqrt(head_dim) for all but the 27B")
        XCTAssertEqual(hf.metadata.config.queryPreAttnScalar, 24)
        config.queryPreAttnScalar = 24
        XCTAssertEqual(config, hf.metadata.config, "everything else as config.json says")
        XCTAssertEqual(file.metadata.config.layerTypes, ["sliding_attention", "full_attention", "sliding_attention", "full_attention"])
        XCTAssertEqual(file.metadata.config.attnLogitSoftcapping, 5)
        XCTAssertEqual(file.metadata.config.finalLogitSoftcapping, 2)
        XCTAssertEqual(file.vocabulary.pieces, hf.vocabulary.pieces, "types and scores are llama.cpp's")
        XCTAssertEqual(file.metadata.provenance.sourceDtype, "gguf MOSTLY_Q4_1: F16 ×1, F32 ×17, Q4_0 ×5, Q4_1 ×6, Q5_0 ×6, Q5_1 ×5, Q8_0 ×6")
    }

    func testRequantizingToQ8AndQ4() throws {
        for (type, bound) in [(StorageType.q8, 0.01), (.q4, 0.15), (.bf16, 0.005)] {
            let (summary, file) = try convert(GGUFFixtures.gemma3, ConversionOptions(type: type, threads: 2, report: true))
            XCTAssertEqual(file.metadata.quantization.type, type)
            for t in summary.tensors {
                XCTAssertLessThan(t.relativeRMSError ?? 1, bound, "\(t.name) as \(t.type)")
            }
            XCTAssertEqual(file.tensor("model.layers.0.self_attn.q_norm.weight")?.type, .f32)
            try file.verify()
        }
        // Q8_0 blocks go through q8 unchanged: the scale of a Q8_0 block is its largest
        // magnitude / 127, which is what q8 picks again.
        let (summary, _) = try convert(GGUFFixtures.gemma2, ConversionOptions(type: .q8, embeddingType: .q8, report: true))
        let golden = try XCTUnwrap(try GGUFFixtures.goldens()["tiny-gemma2-mixed"] as? [String: Any])
        let types = try XCTUnwrap(golden["tensors"] as? [String: [String: Any]])
        var q8 = 0
        for t in summary.tensors where types[t.name]?["type"] as? String == "Q8_0" {
            XCTAssertEqual(t.relativeRMSError, 0, t.name)
            q8 += 1
        }
        XCTAssertEqual(q8, 6)
    }

    /// A q4 file from an already-quantized GGUF follows the source's types for its weight
    /// matrices (Q4_0 -> q4, Q8_0 -> q8, other quantized types -> q5; float sources keep the
    /// policy); Q5_0 and Q8_0 tensors come through exactly. --pure puts every matrix at q4.
    func testQ4FromQuantizedGGUFFollowsTheSourceTypes() throws {
        let golden = try XCTUnwrap(try GGUFFixtures.goldens()["tiny-gemma2-mixed"] as? [String: Any])
        let sourceTypes = try XCTUnwrap(golden["tensors"] as? [String: [String: Any]]).mapValues { $0["type"] as! String }
        let (summary, file) = try convert(GGUFFixtures.gemma2, ConversionOptions(type: .q4, report: true))
        XCTAssertTrue(summary.notices.contains { $0.contains("already quantized") }, "\(summary.notices)")
        var seen = Set<String>()
        for t in summary.tensors where t.shape.count == 2 {
            let source = try XCTUnwrap(sourceTypes[t.name], t.name)
            seen.insert(source)
            let sensitive = QuantizationPolicy.sensitiveMatrices.contains { t.name.hasSuffix($0) }
            let expected: StorageType
            switch source {
            case _ where t.name == "model.embed_tokens.weight": expected = .q8
            case "Q4_0": expected = .q4
            case "Q8_0": expected = .q8
            case "Q4_1", "Q5_0", "Q5_1": expected = .q5
            default: expected = sensitive ? .q8 : .q4
            }
            XCTAssertEqual(t.type, expected, "\(t.name) from \(source)")
            if ["Q5_0", "Q8_0", "Q4_0"].contains(source), t.type != .q8 || source == "Q8_0" {
                XCTAssertEqual(t.relativeRMSError, 0, "\(t.name): \(source) to \(t.type) is exact")
            }
        }
        XCTAssertTrue(seen.isSuperset(of: ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]), "\(seen)")
        try file.verify()

        let (pureSummary, _) = try convert(GGUFFixtures.gemma2, ConversionOptions(type: .q4, pure: true))
        for t in pureSummary.tensors where t.shape.count == 2 && t.name != "model.embed_tokens.weight" {
            XCTAssertEqual(t.type, .q4, t.name)
        }
        // Other types do as asked.
        let (q8Summary, _) = try convert(GGUFFixtures.gemma2, ConversionOptions(type: .q8))
        XCTAssertTrue(q8Summary.tensors.filter { $0.shape.count == 2 }.allSatisfy { $0.type == .q8 })
    }

    func testCLIConvertsAndInspectsGGUF() throws {
        let out = dir + "/g3.gtm"
        let r = try runQuantize([GGUFFixtures.gemma3, "-o", out, "--type", "q8"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("bits per weight"), r.stdout)
        let inspect = try runQuantize(["inspect", out])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        for fragment in ["\"architecture\" : \"gemma3\"", "\"source_format\" : \"gguf\"", "\"layer_types\"", "\"sliding_window\" : 8",
                         "model.layers.0.self_attn.q_norm.weight"] {
            XCTAssertTrue(inspect.stdout.contains(fragment), "inspect shows \(fragment)")
        }
        XCTAssertEqual(try runQuantize(["verify", out]).status, 0)

        let gguf = try runQuantize(["inspect", GGUFFixtures.gemma2])
        XCTAssertEqual(gguf.status, 0, gguf.stderr)
        for fragment in ["GGUF version 3", "gemma2.attn_logit_softcapping = 5.0", "\"query_pre_attn_scalar\" : 16",
                         "tokenizer (as converted): 2048 pieces", "blk.0.ffn_norm.weight", "model.layers.0.pre_feedforward_layernorm.weight"] {
            XCTAssertTrue(gguf.stdout.contains(fragment), "GGUF inspect shows \(fragment)")
        }
        let zoo = try runQuantize(["inspect", GGUFFixtures.zoo])
        XCTAssertNotEqual(zoo.status, 0)
        XCTAssertTrue(zoo.stderr.hasPrefix("error: ") && zoo.stderr.contains("zoo"), zoo.stderr)
    }

    /// A Gemma 1 GGUF (architecture "gemma", where ffn_norm is post_attention_layernorm), written
    /// here from the tiny-gemma checkpoint the way llama.cpp lays it out, converts to the same
    /// tensors as the checkpoint.
    func testGemma1GGUFEqualsItsCheckpoint() throws {
        let folder = GGUFFixtures.root + "/tiny-gemma"
        let (_, fromHF) = try convert(folder)
        let reference = try dequantizedTensors(fromHF)
        let c = fromHF.metadata.config
        var b = GGUFBuilder()
        b.metadata = [
            ("general.architecture", .string("gemma")),
            ("gemma.context_length", .u32(UInt32(c.maxPositionEmbeddings))),
            ("gemma.embedding_length", .u32(UInt32(c.hiddenSize))),
            ("gemma.block_count", .u32(UInt32(c.numHiddenLayers))),
            ("gemma.feed_forward_length", .u32(UInt32(c.intermediateSize))),
            ("gemma.attention.head_count", .u32(UInt32(c.numAttentionHeads))),
            ("gemma.attention.head_count_kv", .u32(UInt32(c.numKeyValueHeads))),
            ("gemma.attention.layer_norm_rms_epsilon", .f32(1e-6)),
            ("gemma.attention.key_length", .u32(UInt32(c.headDim))),
            ("gemma.attention.value_length", .u32(UInt32(c.headDim))),
            ("general.file_type", .u32(0)),
        ]
        b.metadata += vocabularyMetadata(fromHF.vocabulary)
        let hfName: [String: String] = [
            "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
            "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
            "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
        ]
        for t in fromHF.tensors {
            var name = t.name == "model.embed_tokens.weight" ? "token_embd.weight" : "output_norm.weight"
            if t.name.hasPrefix("model.layers.") {
                let parts = t.name.split(separator: ".")
                name = "blk.\(parts[2]).\(hfName[parts[3..<(parts.count - 1)].joined(separator: ".")]!).weight"
            }
            var data: [UInt8] = []
            for v in reference[t.name]! { GGUFBuilder.put((t.name.hasSuffix("norm.weight") ? v + 1 : v).bitPattern, &data) }
            b.tensors.append(.init(name: name, dims: t.shape.reversed().map(UInt64.init), type: 0, data: data))
        }
        // A copy of the embedding as output.weight is tolerated (and ignored).
        b.tensors.append(.init(name: "output.weight", dims: b.tensors[0].dims, type: 0, data: b.tensors[0].data))
        let path = dir + "/gemma1.gguf"
        try b.write(to: path)
        let (summary, fromGGUF) = try convert(path)
        XCTAssertEqual(fromGGUF.metadata.config, c)
        XCTAssertEqual(fromGGUF.tensors.map(\.checksum), fromHF.tensors.map(\.checksum))
        XCTAssertEqual(fromGGUF.vocabulary, fromHF.vocabulary)
        XCTAssertTrue(summary.notices.contains { $0.contains("output.weight") }, "\(summary.notices)")
        XCTAssertEqual(fromGGUF.metadata.config.embeddingScale, 8)
    }

    /// llama.cpp's tokenizer metadata for a vocabulary (spaces in user-defined pieces).
    func vocabularyMetadata(_ v: TokenizerVocabulary) -> [(String, GGUFBuilder.Value)] {
        let pieces = v.pieces.enumerated().map { i, p in v.types[i] == .userDefined ? p.replacingOccurrences(of: "\u{2581}", with: " ") : p }
        return [
            ("tokenizer.ggml.model", .string("llama")),
            ("tokenizer.ggml.tokens", .array(8, pieces.map { .string($0) })),
            ("tokenizer.ggml.scores", .array(6, v.scores.map { .f32($0) })),
            ("tokenizer.ggml.token_type", .array(5, v.types.map { .i32(Int32($0.rawValue)) })),
            ("tokenizer.ggml.bos_token_id", .u32(2)), ("tokenizer.ggml.eos_token_id", .u32(1)),
            ("tokenizer.ggml.unknown_token_id", .u32(3)), ("tokenizer.ggml.padding_token_id", .u32(0)),
            ("tokenizer.ggml.add_space_prefix", .bool(false)),
        ]
    }

    /// What llama.cpp stores for released models (its metadata keys, as in the Gemma 3 270M
    /// GGUF of scripts/fetch-gemma3-270m.sh), plus its hard-coded per-architecture values, gives
    /// the configuration transformers builds from the models' config.json files.
    func testReleasedModelConfigsMatchTransformers() throws {
        let gemma3_270m: [String: GGUFValue] = [
            "gemma3.context_length": .uint32(32768), "gemma3.embedding_length": .uint32(640), "gemma3.block_count": .uint32(18),
            "gemma3.feed_forward_length": .uint32(2048), "gemma3.attention.head_count": .uint32(4),
            "gemma3.attention.layer_norm_rms_epsilon": .float32(1e-6), "gemma3.attention.key_length": .uint32(256),
            "gemma3.attention.value_length": .uint32(256), "gemma3.rope.freq_base": .float32(1_000_000),
            "gemma3.attention.sliding_window": .uint32(512), "gemma3.attention.head_count_kv": .uint32(1),
            "general.file_type": .uint32(15),
        ]
        let hf270m: [String: Any] = [  // google/gemma-3-270m config.json (transformers 4.55)
            "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "_sliding_window_pattern": 6,
            "attention_bias": false, "attn_logit_softcapping": NSNull(), "final_logit_softcapping": NSNull(), "head_dim": 256,
            "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 640, "intermediate_size": 2048,
            "layer_types": (0..<18).map { ($0 + 1) % 6 == 0 ? "full_attention" : "sliding_attention" },
            "max_position_embeddings": 32768, "num_attention_heads": 4, "num_hidden_layers": 18, "num_key_value_heads": 1,
            "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000.0, "rope_scaling": NSNull(),
            "rope_theta": 1000000.0, "sliding_window": 512, "torch_dtype": "bfloat16", "use_bidirectional_attention": false,
            "vocab_size": 262144,
        ]
        let fromGGUF = try GGUFCheckpoint.config(gemma3_270m, architecture: .gemma3, vocabSize: 262144, file: "x.gguf")
        XCTAssertEqual(fromGGUF, try HFConfig.parse(hf270m, file: "config.json").config)
        XCTAssertEqual(fromGGUF.embeddingScale, 25.25, "sqrt(640) in bf16")

        func gemma2(layers: Int, hidden: Int, heads: Int, kv: Int, ff: Int) -> [String: GGUFValue] {
            ["gemma2.context_length": .uint32(8192), "gemma2.embedding_length": .uint32(UInt32(hidden)),
             "gemma2.block_count": .uint32(UInt32(layers)), "gemma2.feed_forward_length": .uint32(UInt32(ff)),
             "gemma2.attention.head_count": .uint32(UInt32(heads)), "gemma2.attention.head_count_kv": .uint32(UInt32(kv)),
             "gemma2.attention.layer_norm_rms_epsilon": .float32(1e-6), "gemma2.attention.key_length": .uint32(128),
             "gemma2.attention.value_length": .uint32(128), "gemma2.attn_logit_softcapping": .float32(50),
             "gemma2.final_logit_softcapping": .float32(30), "gemma2.attention.sliding_window": .uint32(4096)]
        }
        // Gemma 2 27B: query_pre_attn_scalar = hidden / heads = 144, not head_dim (128).
        let g27 = try GGUFCheckpoint.config(gemma2(layers: 46, hidden: 4608, heads: 32, kv: 16, ff: 36864),
                                            architecture: .gemma2, vocabSize: 256000, file: "x.gguf")
        XCTAssertEqual(g27.queryPreAttnScalar, 144)
        XCTAssertEqual(g27.layerTypes?.prefix(3), ["sliding_attention", "full_attention", "sliding_attention"])
        XCTAssertEqual(g27.attnLogitSoftcapping, 50)
        XCTAssertEqual(g27.finalLogitSoftcapping, 30)
        XCTAssertEqual(g27.slidingWindow, 4096)
        XCTAssertNil(g27.ropeLocalBaseFreq)
        let g9 = try GGUFCheckpoint.config(gemma2(layers: 42, hidden: 3584, heads: 16, kv: 8, ff: 14336),
                                           architecture: .gemma2, vocabSize: 256000, file: "x.gguf")
        XCTAssertEqual(g9.queryPreAttnScalar, 128, "head_dim for the other sizes")
        var noWindow = gemma3_270m
        noWindow["gemma3.attention.sliding_window"] = nil
        let global = try GGUFCheckpoint.config(noWindow, architecture: .gemma3, vocabSize: 262144, file: "x.gguf")
        XCTAssertEqual(Set(global.layerTypes ?? []), ["full_attention"], "no window: llama.cpp runs every layer globally")
        var scaled = gemma3_270m
        scaled["gemma3.rope.scaling.type"] = .string("linear")
        XCTAssertThrowsError(try GGUFCheckpoint.config(scaled, architecture: .gemma3, vocabSize: 262144, file: "x.gguf")) {
            XCTAssertTrue("\($0)".contains("RoPE scaling"), "\($0)")
        }
    }

    func testLayerPatternsFollowLlamaCpp() throws {
        func bad(_ s: String) -> ConversionError { .invalidGGUF(file: "x", reason: s) }
        let s = ModelConfig.slidingAttention, f = ModelConfig.fullAttention
        XCTAssertEqual(try GGUFCheckpoint.layerTypes(nil, layers: 4, defaultPattern: 2, bad: bad), [s, f, s, f])
        XCTAssertEqual(try GGUFCheckpoint.layerTypes(nil, layers: 18, defaultPattern: 6, bad: bad),
                       [s, s, s, s, s, f, s, s, s, s, s, f, s, s, s, s, s, f])
        XCTAssertEqual(try GGUFCheckpoint.layerTypes(.uint32(3), layers: 4, defaultPattern: 6, bad: bad), [s, s, f, s])
        XCTAssertEqual(try GGUFCheckpoint.layerTypes(.uint32(0), layers: 2, defaultPattern: 6, bad: bad), [s, s])
        XCTAssertEqual(try GGUFCheckpoint.layerTypes(.array(.bool, [.bool(false), .bool(true)]), layers: 2, defaultPattern: 6, bad: bad), [f, s])
        XCTAssertThrowsError(try GGUFCheckpoint.layerTypes(.array(.bool, [.bool(true)]), layers: 2, defaultPattern: 6, bad: bad))
    }

    func testTensorNameMap() {
        XCTAssertEqual(GGUFCheckpoint.huggingFaceName("blk.3.ffn_norm.weight", architecture: .gemma), "model.layers.3.post_attention_layernorm.weight")
        XCTAssertEqual(GGUFCheckpoint.huggingFaceName("blk.3.ffn_norm.weight", architecture: .gemma2), "model.layers.3.pre_feedforward_layernorm.weight")
        XCTAssertEqual(GGUFCheckpoint.huggingFaceName("blk.3.post_attention_norm.weight", architecture: .gemma3), "model.layers.3.post_attention_layernorm.weight")
        XCTAssertEqual(GGUFCheckpoint.huggingFaceName("blk.0.attn_k_norm.weight", architecture: .gemma3), "model.layers.0.self_attn.k_norm.weight")
        XCTAssertNil(GGUFCheckpoint.huggingFaceName("blk.0.attn_k_norm.weight", architecture: .gemma2))
        XCTAssertNil(GGUFCheckpoint.huggingFaceName("blk.0.post_ffw_norm.weight", architecture: .gemma))
        XCTAssertNil(GGUFCheckpoint.huggingFaceName("blk.01.attn_q.weight", architecture: .gemma))
        XCTAssertNil(GGUFCheckpoint.huggingFaceName("blk.-1.attn_q.weight", architecture: .gemma))
        XCTAssertNil(GGUFCheckpoint.huggingFaceName("blk.0.attn_q.bias", architecture: .gemma))
        XCTAssertEqual(GGUFCheckpoint.huggingFaceName("output_norm.weight", architecture: .gemma3), "model.norm.weight")
    }
}
