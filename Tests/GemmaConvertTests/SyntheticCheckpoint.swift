import Foundation
import GemmaKernels

/// Writes small Gemma-shaped Hugging Face checkpoints for converter tests: config.json in either
/// transformers' 4.x or 5.x style, single or sharded safetensors in bf16/f16/f32, and the
/// fixture tokenizer.model. Values are deterministic.
struct SyntheticCheckpoint {
    enum ConfigStyle { case transformers4, transformers5 }

    var vocabSize = 2048
    var hidden = 64
    var intermediate = 128
    var layers = 2
    var heads = 4
    var kvHeads = 1
    var headDim = 16
    var dtype = "BF16"
    var style = ConfigStyle.transformers5
    var shards = 1
    var seed: UInt64 = 1
    var architecture = "GemmaForCausalLM"
    /// Hooks for bad-input tests.
    var editTensors: (inout [Tensor]) -> Void = { _ in }
    var editConfig: (inout [String: Any]) -> Void = { _ in }

    struct Tensor {
        var name: String
        var shape: [Int]
        var dtype: String
        var values: [Float]
        /// Overrides the encoded bytes (for malformed tensors).
        var rawBytes: [UInt8]? = nil
    }

    static var repositoryRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    static var fixtureTokenizer: String { repositoryRoot + "/fixtures/tokenizer/tokenizer.model" }

    func tensors() -> [Tensor] {
        var rng = Rng(state: seed)
        func t(_ name: String, _ shape: [Int], scale: Float) -> Tensor {
            Tensor(name: name, shape: shape, dtype: dtype, values: (0..<shape.reduce(1, *)).map { _ in rng.normal() * scale })
        }
        var list = [t("model.embed_tokens.weight", [vocabSize, hidden], scale: 0.5)]
        for i in 0..<layers {
            let p = "model.layers.\(i)."
            list += [
                t(p + "input_layernorm.weight", [hidden], scale: 0.3),
                t(p + "self_attn.q_proj.weight", [heads * headDim, hidden], scale: 0.1),
                t(p + "self_attn.k_proj.weight", [kvHeads * headDim, hidden], scale: 0.1),
                t(p + "self_attn.v_proj.weight", [kvHeads * headDim, hidden], scale: 0.1),
                t(p + "self_attn.o_proj.weight", [hidden, heads * headDim], scale: 0.1),
                t(p + "post_attention_layernorm.weight", [hidden], scale: 0.3),
                t(p + "mlp.gate_proj.weight", [intermediate, hidden], scale: 0.1),
                t(p + "mlp.up_proj.weight", [intermediate, hidden], scale: 0.1),
                t(p + "mlp.down_proj.weight", [hidden, intermediate], scale: 0.1),
            ]
        }
        list.append(t("model.norm.weight", [hidden], scale: 0.3))
        return list
    }

    func config() -> [String: Any] {
        var c: [String: Any] = [
            "architectures": [architecture], "model_type": "gemma", "vocab_size": vocabSize, "hidden_size": hidden,
            "intermediate_size": intermediate, "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kvHeads, "head_dim": headDim, "max_position_embeddings": 256, "rms_norm_eps": 1e-6,
            "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
        ]
        let dtypeName = ["BF16": "bfloat16", "F16": "float16", "F32": "float32"][dtype] ?? "bfloat16"
        switch style {
        case .transformers4:
            c["rope_theta"] = 10000.0
            c["hidden_act"] = "gelu"
            c["torch_dtype"] = dtypeName
        case .transformers5:
            c["rope_parameters"] = ["rope_theta": 10000.0, "rope_type": "default"]
            c["hidden_activation"] = "gelu_pytorch_tanh"
            c["hidden_act"] = "gelu_pytorch_tanh"
            c["dtype"] = dtypeName
            c["tie_word_embeddings"] = true
        }
        editConfig(&c)
        return c
    }

    /// Writes the checkpoint into `folder` (created) and returns the tensors as written.
    @discardableResult
    func write(to folder: String) throws -> [Tensor] {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: config(), options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: folder + "/config.json"))
        try FileManager.default.copyItem(atPath: Self.fixtureTokenizer, toPath: folder + "/tokenizer.model")
        var list = tensors()
        editTensors(&list)
        if shards == 1 {
            try Self.writeSafetensors(list, to: folder + "/model.safetensors")
        } else {
            var weightMap: [String: String] = [:]
            let perShard = (list.count + shards - 1) / shards
            for s in 0..<shards {
                let name = String(format: "model-%05d-of-%05d.safetensors", s + 1, shards)
                let part = Array(list[min(list.count, s * perShard) ..< min(list.count, (s + 1) * perShard)])
                try Self.writeSafetensors(part, to: folder + "/" + name)
                for t in part { weightMap[t.name] = name }
            }
            try JSONSerialization.data(withJSONObject: ["metadata": ["total_size": 0], "weight_map": weightMap])
                .write(to: URL(fileURLWithPath: folder + "/model.safetensors.index.json"))
        }
        return list
    }

    /// A protobuf varint at `i`, advancing past it.
    private static func readVarint(_ bytes: [UInt8], _ i: inout Int) -> Int {
        var value = 0, shift = 0
        while true {
            let b = bytes[i]
            i += 1
            value |= Int(b & 0x7F) << shift
            shift += 7
            if b < 0x80 { return value }
        }
    }

    /// Advances `i` past a field's value of wire type `wire`.
    private static func skipField(_ bytes: [UInt8], wire: Int, _ i: inout Int) {
        switch wire {
        case 0: _ = readVarint(bytes, &i)
        case 1: i += 8
        case 2: i += readVarint(bytes, &i)
        case 5: i += 4
        default: preconditionFailure("wire type \(wire)")
        }
    }

    /// The fixture tokenizer.model with the type of the piece `text` changed to `type`
    /// (SentencePiece's numbering: 1 NORMAL, 2 UNKNOWN, 3 CONTROL, ...), both one-byte varints,
    /// so every length stays as it is.
    static func fixtureTokenizer(retyping text: String, to type: UInt8) throws -> [UInt8] {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixtureTokenizer)))
        func varint(_ i: inout Int) -> Int { readVarint(bytes, &i) }
        func skip(_ wire: Int, _ i: inout Int) { skipField(bytes, wire: wire, &i) }
        var i = 0
        while i < bytes.count {
            let tag = varint(&i)
            guard tag == 1 << 3 | 2 else { skip(tag & 7, &i); continue }  // ModelProto.pieces
            let length = varint(&i), end = i + length
            var j = i, pieceText: String? = nil, typeAt: Int? = nil
            while j < end {
                let field = varint(&j)
                if field == 1 << 3 | 2 {
                    let n = varint(&j)
                    pieceText = String(decoding: bytes[j ..< j + n], as: UTF8.self)
                    j += n
                } else if field == 3 << 3 | 0, bytes[j] < 0x80 {
                    typeAt = j
                    j += 1
                } else {
                    skip(field & 7, &j)
                }
            }
            if pieceText == text, let typeAt {
                bytes[typeAt] = type
                return bytes
            }
            i = end
        }
        throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "no typed piece \(text) in \(fixtureTokenizer)"])
    }

    /// The fixture's tokenizer.model with one more varint field `field` = `value` at the end of
    /// its TrainerSpec (field 2): protobuf readers keep the last value of a scalar field, so it
    /// overrides the fixture's (e.g. field 41, bos_id, set to -1: no BOS).
    static func fixtureTokenizer(trainerSpecField field: Int, setTo value: Int64) throws -> [UInt8] {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixtureTokenizer)))
        func varint(_ v: UInt64) -> [UInt8] {
            var v = v, out: [UInt8] = []
            while v >= 0x80 { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
            return out + [UInt8(v)]
        }
        var out: [UInt8] = [], i = 0
        while i < bytes.count {
            let start = i, tag = readVarint(bytes, &i)
            skipField(bytes, wire: tag & 7, &i)
            guard tag == 2 << 3 | 2 else { out += bytes[start ..< i]; continue }  // ModelProto.trainer_spec
            var j = start
            _ = readVarint(bytes, &j)
            let length = readVarint(bytes, &j)
            let spec = Array(bytes[j ..< j + length]) + varint(UInt64(field << 3)) + varint(UInt64(bitPattern: value))
            out += varint(UInt64(tag)) + varint(UInt64(spec.count)) + spec
        }
        return out
    }

    /// The tensor's bytes, little-endian (as safetensors stores them; the host is too).
    static func encode(_ t: Tensor) -> [UInt8] {
        if let raw = t.rawBytes { return raw }
        switch t.dtype {
        case "F32": return t.values.withUnsafeBytes { Array($0) }
        case "F16": return t.values.map { gt_f32_to_f16($0) }.withUnsafeBytes { Array($0) }
        default: return t.values.map { gt_f32_to_bf16($0) }.withUnsafeBytes { Array($0) }
        }
    }

    static func writeSafetensors(_ tensors: [Tensor], to path: String, header edit: ((inout [String: Any]) -> Void)? = nil) throws {
        var header: [String: Any] = ["__metadata__": ["format": "pt"]]
        var data: [UInt8] = []
        for t in tensors {
            let bytes = encode(t)
            header[t.name] = ["dtype": t.dtype, "shape": t.shape, "data_offsets": [data.count, data.count + bytes.count]]
            data += bytes
        }
        edit?(&header)
        var json = Array(try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        while json.count % 8 != 0 { json.append(0x20) }
        var file: [UInt8] = []
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file += $0 }
        file += json + data
        try Data(file).write(to: URL(fileURLWithPath: path))
    }
}

struct Rng {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func normal() -> Float {
        var s: Float = 0
        for _ in 0..<4 { s += Float(next() >> 40) / Float(1 << 24) }
        return (s - 2) * 1.7
    }
}
