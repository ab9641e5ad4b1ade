import Foundation
import GemmaKernels
import GemmaTiny

/// Reads a Hugging Face config.json as transformers 4.38 through 5.x write it and normalises it
/// into the runtime's `ModelConfig`.
enum HFConfig {
    static let supportedArchitectures = ["GemmaForCausalLM"]

    struct Parsed {
        var config: ModelConfig
        var architecture: String
        /// The dtype config.json says the model runs in ("bfloat16", "float16", "float32"), if any.
        var dtype: String?
    }

    static func read(path: String) throws(ConversionError) -> Parsed {
        guard let data = FileManager.default.contents(atPath: path) else { throw .missingFile(path) }
        guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw .invalidConfig(file: path, reason: "not a JSON object")
        }
        return try parse(json, file: path)
    }

    static func parse(_ json: [String: Any], file: String) throws(ConversionError) -> Parsed {
        func bad(_ why: String) -> ConversionError { .invalidConfig(file: file, reason: why) }
        let architectures = json["architectures"] as? [String] ?? []
        let architecture = architectures.first ?? (json["model_type"] as? String ?? "unknown")
        guard supportedArchitectures.contains(architecture) else { throw .unsupportedArchitecture(architecture) }

        func int(_ key: String, default value: Int? = nil) throws(ConversionError) -> Int {
            if let n = jsonNumber(json[key]) {
                let v = n.doubleValue
                guard v == v.rounded(), v > 0, v < Double(1 << 40) else { throw bad("\(key) = \(n) is not a positive integer") }
                return Int(v)
            }
            if json[key] == nil || json[key] is NSNull, let value { return value }
            throw bad(json[key] == nil ? "missing \(key)" : "\(key) is not a number")
        }
        func double(_ value: Any?, _ key: String) throws(ConversionError) -> Double? {
            guard let value, !(value is NSNull) else { return nil }
            guard let n = jsonNumber(value) else { throw bad("\(key) is not a number") }
            return n.doubleValue
        }

        let hidden = try int("hidden_size")
        let heads = try int("num_attention_heads")
        let kvHeads = try int("num_key_value_heads", default: heads)
        let headDim = try int("head_dim", default: hidden / max(heads, 1))
        // transformers 5 moved rope_theta into rope_parameters.
        let ropeParameters = json["rope_parameters"] as? [String: Any]
        let topLevelTheta = try double(json["rope_theta"], "rope_theta")
        let nestedTheta = try double(ropeParameters?["rope_theta"], "rope_parameters.rope_theta")
        let ropeTheta = topLevelTheta ?? nestedTheta ?? 10000
        if let scaling = json["rope_scaling"], !(scaling is NSNull) { throw bad("rope_scaling is not supported for Gemma") }
        if let type = ropeParameters?["rope_type"] as? String, type != "default" {
            throw bad("rope_parameters.rope_type \(type) is not supported for Gemma")
        }
        if let tie = json["tie_word_embeddings"] as? Bool, !tie {
            throw bad("tie_word_embeddings = false: Gemma ties the LM head to the embedding")
        }
        // Gemma uses the tanh-approximate GELU whichever name is written (early files say "gelu").
        for key in ["hidden_act", "hidden_activation"] {
            if let act = json[key] as? String, !act.hasPrefix("gelu") { throw bad("\(key) = \(act): Gemma uses GELU") }
        }
        if json["use_bidirectional_attention"] as? Bool == true {
            throw bad("use_bidirectional_attention = true (an embedding model) is not supported")
        }
        let dtype = (json["torch_dtype"] as? String) ?? (json["dtype"] as? String)
        let eps = try double(json["rms_norm_eps"], "rms_norm_eps") ?? 1e-6

        let config = ModelConfig(
            architecture: "gemma",
            vocabSize: try int("vocab_size"),
            hiddenSize: hidden,
            intermediateSize: try int("intermediate_size"),
            numHiddenLayers: try int("num_hidden_layers"),
            numAttentionHeads: heads,
            numKeyValueHeads: kvHeads,
            headDim: headDim,
            maxPositionEmbeddings: try int("max_position_embeddings", default: 8192),
            rmsNormEps: eps,
            ropeTheta: ropeTheta,
            hiddenActivation: "gelu_pytorch_tanh",
            embeddingScale: embeddingScale(hiddenSize: hidden, dtype: dtype ?? "bfloat16"))
        do { try config.validate() } catch { throw bad(error.description) }
        return Parsed(config: config, architecture: architecture, dtype: dtype)
    }

    /// A JSON number, not a boolean (Foundation bridges both to NSNumber; `is Bool` is true
    /// for the numbers 0 and 1 too, so the class decides).
    static func jsonNumber(_ value: Any?) -> NSNumber? {
        guard let n = value as? NSNumber, !String(describing: type(of: n)).contains("Boolean") else { return nil }
        return n
    }

    /// sqrt(hidden_size) as the reference computes it: a tensor in the activation dtype, so in
    /// bf16 sqrt(2048) = 45.2548 is rounded to 45.25.
    static func embeddingScale(hiddenSize: Int, dtype: String) -> Float {
        let exact = Float(Double(hiddenSize).squareRoot())
        switch dtype {
        case "bfloat16": return gt_bf16_to_f32(gt_f32_to_bf16(exact))
        case "float16": return gt_f16_to_f32(gt_f32_to_f16(exact))
        default: return exact
        }
    }
}
