import Foundation
import GemmaKernels
import GemmaTiny

/// Reads a Hugging Face config.json as transformers 4.38 through 5.x write it and normalises it
/// into the runtime's `ModelConfig`.
enum HFConfig {
    /// Hugging Face class name -> ModelConfig.architecture.
    static let supportedArchitectures: [String: ModelArchitecture] = [
        "GemmaForCausalLM": .gemma, "Gemma2ForCausalLM": .gemma2, "Gemma3ForCausalLM": .gemma3,
    ]

    struct Parsed {
        var config: ModelConfig
        /// The Hugging Face class name (config.json's `architectures`), e.g. "Gemma2ForCausalLM".
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
        let modelType = json["model_type"] as? String
        let architecture = architectures.first ?? (modelType ?? "unknown")
        if architecture == "Gemma3ForConditionalGeneration" || modelType == "gemma3" {
            throw .unsupportedArchitecture("\(architecture) (multimodal Gemma 3, model_type gemma3): only text-only Gemma3ForCausalLM checkpoints (model_type gemma3_text: Gemma 3 270M and 1B) are supported")
        }
        guard let arch = supportedArchitectures[architecture] else { throw .unsupportedArchitecture(architecture) }

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
        /// A key that may be absent (class default), null (feature off) or a positive number.
        func optionalPositive(_ key: String, default value: Double?) throws(ConversionError) -> Double? {
            guard let raw = json[key] else { return value }
            guard let v = try double(raw, key) else { return nil }
            guard v.isFinite, v > 0 else { throw bad("\(key) = \(v) is not a positive number") }
            return v
        }

        let hidden = try int("hidden_size")
        let heads = try int("num_attention_heads")
        let kvHeads = try int("num_key_value_heads", default: heads)
        let headDim = try int("head_dim", default: hidden / max(heads, 1))
        let layers = try int("num_hidden_layers")
        if let scaling = json["rope_scaling"], !(scaling is NSNull) { throw bad("rope_scaling is not supported for Gemma") }
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
        if json["attention_bias"] as? Bool == true { throw bad("attention_bias = true is not supported for Gemma") }
        let dtype = (json["torch_dtype"] as? String) ?? (json["dtype"] as? String)
        let eps = try double(json["rms_norm_eps"], "rms_norm_eps") ?? 1e-6

        // RoPE: transformers 4 writes rope_theta (and Gemma 3's rope_local_base_freq) at the top
        // level; transformers 5 writes rope_parameters, per layer type for Gemma 3
        // ({"full_attention": {...}, "sliding_attention": {...}}), flat otherwise.
        let ropeParameters = json["rope_parameters"] as? [String: Any]
        func ropeTheta(_ parameters: [String: Any]?, _ key: String) throws(ConversionError) -> Double? {
            guard let parameters else { return nil }
            if let type = parameters["rope_type"] as? String, type != "default" {
                throw bad("\(key).rope_type \(type) is not supported for Gemma")
            }
            for extra in ["factor", "rope_scaling"] where parameters[extra] != nil && !(parameters[extra] is NSNull) {
                throw bad("\(key).\(extra) (RoPE scaling) is not supported for Gemma")
            }
            return try double(parameters["rope_theta"], "\(key).rope_theta")
        }
        let perLayerType = ropeParameters?["full_attention"] != nil || ropeParameters?["sliding_attention"] != nil
        let flatTheta = perLayerType ? nil : try ropeTheta(ropeParameters, "rope_parameters")
        let fullTheta = perLayerType
            ? try ropeTheta(ropeParameters?["full_attention"] as? [String: Any], "rope_parameters.full_attention") : nil
        let slidingTheta = perLayerType
            ? try ropeTheta(ropeParameters?["sliding_attention"] as? [String: Any], "rope_parameters.sliding_attention") : nil
        let topLevelTheta = try double(json["rope_theta"], "rope_theta")
        let defaultTheta = arch == .gemma3 ? 1_000_000.0 : 10000.0
        let ropeTheta = fullTheta ?? topLevelTheta ?? flatTheta ?? defaultTheta

        var config = ModelConfig(
            architecture: arch,
            vocabSize: try int("vocab_size"),
            hiddenSize: hidden,
            intermediateSize: try int("intermediate_size"),
            numHiddenLayers: layers,
            numAttentionHeads: heads,
            numKeyValueHeads: kvHeads,
            headDim: headDim,
            maxPositionEmbeddings: try int("max_position_embeddings", default: arch == .gemma3 ? 131_072 : 8192),
            rmsNormEps: eps,
            ropeTheta: ropeTheta,
            hiddenActivation: "gelu_pytorch_tanh",
            embeddingScale: embeddingScale(hiddenSize: hidden, dtype: dtype ?? "bfloat16"))

        if arch != .gemma {
            // Defaults are those of transformers' Gemma2Config / Gemma3TextConfig.
            config.queryPreAttnScalar = try optionalPositive("query_pre_attn_scalar", default: 256)
            guard config.queryPreAttnScalar != nil else { throw bad("query_pre_attn_scalar is null") }
            config.attnLogitSoftcapping = try optionalPositive("attn_logit_softcapping", default: arch == .gemma2 ? 50 : nil)
            config.finalLogitSoftcapping = try optionalPositive("final_logit_softcapping", default: arch == .gemma2 ? 30 : nil)
            config.slidingWindow = try int("sliding_window", default: 4096)
            config.layerTypes = try layerTypes(json, arch: arch, layers: layers, bad: bad)
            if arch == .gemma3 {
                let topLevelLocal = try double(json["rope_local_base_freq"], "rope_local_base_freq")
                config.ropeLocalBaseFreq = slidingTheta ?? topLevelLocal ?? 10000
            }
            if arch.hasQKNorm { config.useQKNorm = true }
        }
        do { try config.validate() } catch { throw bad(error.description) }
        return Parsed(config: config, architecture: architecture, dtype: dtype)
    }

    /// The per-layer attention kinds: config.json's layer_types when present (transformers 5
    /// always writes it), else what transformers derives: Gemma 2 alternates starting with a
    /// sliding layer; Gemma 3 has `sliding_window_pattern` (default 6) - 1 sliding layers, then
    /// a full one.
    static func layerTypes(_ json: [String: Any], arch: ModelArchitecture, layers: Int,
                           bad: (String) -> ConversionError) throws(ConversionError) -> [String] {
        if let listed = json["layer_types"], !(listed is NSNull) {
            guard let list = listed as? [String] else { throw bad("layer_types is not a list of strings") }
            return list
        }
        var pattern = 2
        if arch == .gemma3 {
            pattern = 6
            for key in ["sliding_window_pattern", "_sliding_window_pattern"] {
                if let n = jsonNumber(json[key]) {
                    guard n.doubleValue == n.doubleValue.rounded(), n.intValue > 0, n.intValue <= 1 << 20 else {
                        throw bad("\(key) = \(n) is not a positive integer")
                    }
                    pattern = n.intValue
                    break
                }
            }
        }
        return (0..<layers).map { ($0 + 1) % pattern != 0 ? ModelConfig.slidingAttention : ModelConfig.fullAttention }
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
