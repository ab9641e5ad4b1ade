import Foundation
import GemmaKernels
import GemmaQuantizeKernels
import GemmaTiny

/// A Gemma model in a GGUF file, seen as the converter's other kind of input: the configuration
/// normalised into `ModelConfig` (Hugging Face's names and values), the SentencePiece vocabulary
/// as tokenizer.model would have it, and every tensor under its Hugging Face name.
///
/// What llama.cpp's converter (convert_hf_to_gguf.py, conversion/gemma.py) changed on the way in
/// and this undoes:
/// - tensor names (`blk.N.attn_q.weight` for `model.layers.N.self_attn.q_proj.weight`, ...);
///   `ffn_norm` is Gemma 1's `post_attention_layernorm` but Gemma 2/3's
///   `pre_feedforward_layernorm` (there `post_attention_norm` is `post_attention_layernorm`);
/// - dimension order (GGUF lists the fastest-varying dimension first);
/// - every norm weight (names ending in `norm.weight`, Gemma 3's `attn_q_norm`/`attn_k_norm`
///   included) was stored as `w + 1`, computed in f32: the importer subtracts 1 again, which
///   gives the checkpoint's raw value back exactly (for |w| above ~2^-16);
/// - the vocabulary (see `vocabulary(...)`);
/// - values llama.cpp does not store but hard-codes per architecture (the sliding-window layer
///   pattern, Gemma 3's local RoPE base, the attention scale), which are filled in as
///   transformers has them for the released models.
struct GGUFCheckpoint {
    let file: GGUFFile
    /// From `general.architecture` (llama.cpp's names are `ModelArchitecture`'s raw values).
    let architecture: ModelArchitecture
    let config: ModelConfig
    let vocabulary: TokenizerVocabulary
    let tokenizerSettings: TokenizerSettings
    /// Hugging Face name -> GGUF tensor.
    let tensors: [String: GGUFFile.Tensor]
    /// GGUF tensors not converted (a tied `output.weight`), with the reason.
    let ignored: [(name: String, reason: String)]
    let notices: [String]

    static let maximumLayers = 4096

    init(path: String) throws(ConversionError) {
        let file = try GGUFFile(path: path)
        self.file = file
        func bad(_ why: String) -> ConversionError { .invalidGGUF(file: path, reason: why) }
        let meta = file.metadata
        var notices: [String] = []

        guard let name = meta["general.architecture"]?.string else { throw bad("no general.architecture") }
        guard let arch = ModelArchitecture(rawValue: name) else {
            throw .unsupportedArchitecture("\(name) (GGUF general.architecture)")
        }
        architecture = arch

        // ---- tensors ----
        var tensors: [String: GGUFFile.Tensor] = [:]
        var ignored: [(String, String)] = []
        for t in file.tensors {
            if t.name == "output.weight" {
                // Gemma ties the LM head to the embedding; llama.cpp never writes one for Gemma,
                // but a file that carries a copy is fine as long as it is the same matrix.
                if let embd = file.tensorsByName["token_embd.weight"], embd.type == t.type, embd.dims == t.dims,
                   file.bytes(embd).elementsEqual(file.bytes(t)) {
                    ignored.append((t.name, "a copy of token_embd.weight (the LM head is tied to the embedding)"))
                    continue
                }
                throw bad("output.weight differs from token_embd.weight: an untied LM head is not supported for Gemma")
            }
            if t.name == "rope_freqs.weight" { throw bad("rope_freqs.weight (RoPE frequency factors) is not supported for Gemma") }
            guard let hf = Self.huggingFaceName(t.name, architecture: arch) else {
                throw .unexpectedTensor("\(t.name) (in \(path))")
            }
            tensors[hf] = t
        }
        self.tensors = tensors
        self.ignored = ignored

        // ---- configuration ----
        guard let embedding = file.tensorsByName["token_embd.weight"], embedding.dims.count == 2 else {
            throw .missingTensor("token_embd.weight (in \(path))")
        }
        let vocab = embedding.dims[1]
        let config = try Self.config(meta, architecture: arch, vocabSize: vocab, file: path)
        self.config = config

        // ---- tokenizer ----
        (vocabulary, tokenizerSettings) = try Self.vocabulary(meta, file: path, notices: &notices)
        guard vocabulary.count <= vocab else {
            throw bad("\(vocabulary.count) tokens but token_embd.weight has only \(vocab) rows")
        }
        if vocabulary.count < vocab {
            notices.append("tokenizer has \(vocabulary.count) pieces, the embedding \(vocab) rows; the extra ids decode to nothing")
        }
        self.notices = notices
    }

    /// The configuration from `{arch}.*` metadata; `vocabSize` is the embedding's row count.
    static func config(_ meta: [String: GGUFValue], architecture: ModelArchitecture, vocabSize vocab: Int,
                       file path: String) throws(ConversionError) -> ModelConfig {
        func bad(_ why: String) -> ConversionError { .invalidGGUF(file: path, reason: why) }
        // The metadata keys' prefix.
        let arch = architecture.rawValue
        func key(_ suffix: String) -> GGUFValue? { meta["\(arch).\(suffix)"] }
        func int(_ suffix: String, default value: Int? = nil) throws(ConversionError) -> Int {
            guard let v = key(suffix) else {
                if let value { return value }
                throw bad("missing \(arch).\(suffix)")
            }
            // Per-layer arrays (as some architectures write) are accepted when uniform.
            if let list = v.array {
                let ints = list.compactMap(\.integer)
                guard ints.count == list.count, let first = ints.first, ints.allSatisfy({ $0 == first }) else {
                    throw bad("\(arch).\(suffix) = \(v): per-layer values that differ are not supported")
                }
                return try positive(first, suffix)
            }
            guard let n = v.integer else { throw bad("\(arch).\(suffix) is a \(v.typeName), not an integer") }
            return try positive(n, suffix)
        }
        func positive(_ n: Int, _ suffix: String) throws(ConversionError) -> Int {
            guard n > 0, n < 1 << 40 else { throw bad("\(arch).\(suffix) = \(n) is out of range") }
            return n
        }
        func number(_ suffix: String) throws(ConversionError) -> Double? {
            guard let v = key(suffix) else { return nil }
            guard let d = v.number, d.isFinite else { throw bad("\(arch).\(suffix) = \(v) is not a number") }
            return d
        }

        let hidden = try int("embedding_length")
        let heads = try int("attention.head_count")
        let kvHeads = try int("attention.head_count_kv", default: heads)
        let headDim = try int("attention.key_length", default: hidden / heads)
        if let v = key("attention.value_length"), v.integer != headDim {
            throw bad("\(arch).attention.value_length = \(v) differs from the key length \(headDim)")
        }
        if let v = key("rope.dimension_count"), v.integer != headDim {
            throw bad("\(arch).rope.dimension_count = \(v): partial RoPE is not supported (head dim \(headDim))")
        }
        if let v = key("rope.scaling.type"), v.string != "none" {
            throw bad("\(arch).rope.scaling.type = \(v): RoPE scaling is not supported")
        }
        if let f = try number("rope.scaling.factor"), f != 1, f != 0 {
            throw bad("\(arch).rope.scaling.factor = \(f): RoPE scaling is not supported")
        }
        let layers = try int("block_count")
        // Checked here, before anything sized by it is built (the layer-type list): real models
        // have tens of layers, and the tensors would have to exist for each.
        guard layers <= Self.maximumLayers else {
            throw bad("\(arch).block_count = \(layers) is out of range (at most \(Self.maximumLayers) layers)")
        }
        if let v = key("vocab_size"), v.integer != vocab {
            throw bad("\(arch).vocab_size = \(v) but token_embd.weight has \(vocab) rows")
        }
        let eps = try number("attention.layer_norm_rms_epsilon") ?? 1e-6
        let ropeTheta = try number("rope.freq_base") ?? 10000
        // llama.cpp does not record the dtype the model was trained/released in; Gemma checkpoints
        // are bf16 (an all-F32 GGUF says so with general.file_type 0).
        let dtype = meta["general.file_type"]?.integer == 0 ? "float32" : "bfloat16"

        var config = ModelConfig(
            architecture: architecture, vocabSize: vocab, hiddenSize: hidden, intermediateSize: try int("feed_forward_length"),
            numHiddenLayers: layers, numAttentionHeads: heads, numKeyValueHeads: kvHeads, headDim: headDim,
            maxPositionEmbeddings: try int("context_length", default: 8192), rmsNormEps: eps, ropeTheta: ropeTheta,
            hiddenActivation: "gelu_pytorch_tanh", embeddingScale: HFConfig.embeddingScale(hiddenSize: hidden, dtype: dtype))

        if architecture != .gemma {
            // llama.cpp (src/models/gemma2.cpp, gemma3.cpp) uses 1/sqrt(head_dim) except for the
            // 27B models (46 layers for Gemma 2, 62 for Gemma 3), which use 1/sqrt(hidden/heads):
            // exactly transformers' query_pre_attn_scalar of every released model.
            let is27B = (architecture == .gemma2 && layers == 46) || (architecture == .gemma3 && layers == 62)
            config.queryPreAttnScalar = Double(is27B ? hidden / heads : headDim)
            let slidingWindow: Int?
            let defaultPattern: Int
            if architecture == .gemma2 {
                config.attnLogitSoftcapping = try number("attn_logit_softcapping") ?? 50
                config.finalLogitSoftcapping = try number("final_logit_softcapping") ?? 30
                slidingWindow = try int("attention.sliding_window", default: 4096)
                defaultPattern = 2
                if let local = try number("rope.freq_base_swa"), local != ropeTheta {
                    throw bad("\(arch).rope.freq_base_swa = \(local) differs from rope.freq_base: not a Gemma 2 setting")
                }
            } else {
                // Gemma 3 has no attention soft-capping (llama.cpp ignores the key for gemma3);
                // final soft-capping only when the file sets it.
                let final = try number("final_logit_softcapping")
                config.finalLogitSoftcapping = final == 0 ? nil : final
                // llama.cpp: no key, or 0, means no sliding-window layers at all.
                var window = 0
                if let v = key("attention.sliding_window") {
                    guard let n = v.integer, n >= 0, n < 1 << 40 else { throw bad("\(arch).attention.sliding_window = \(v) is not a window size") }
                    window = n
                }
                slidingWindow = window > 0 ? window : nil
                defaultPattern = 6
                config.ropeLocalBaseFreq = try number("rope.freq_base_swa") ?? 10000
            }
            if architecture.hasQKNorm { config.useQKNorm = true }
            config.slidingWindow = slidingWindow
            config.layerTypes = slidingWindow == nil
                ? Array(repeating: ModelConfig.fullAttention, count: layers)
                : try Self.layerTypes(key("attention.sliding_window_pattern"), layers: layers, defaultPattern: defaultPattern, bad: bad)
            for (suffix, value) in [("attn_logit_softcapping", config.attnLogitSoftcapping), ("final_logit_softcapping", config.finalLogitSoftcapping)] {
                if let value, value < 0 { throw bad("\(arch).\(suffix) = \(value) is negative") }
            }
            if config.attnLogitSoftcapping == 0 { config.attnLogitSoftcapping = nil }
            if config.finalLogitSoftcapping == 0 { config.finalLogitSoftcapping = nil }
        }
        do { try config.validate() } catch { throw bad(error.description) }
        return config
    }

    /// GGUF tensor name -> Hugging Face name, per gguf-py's tensor map for the architecture
    /// (`ModelSchema`'s `ggufName`s).
    static func huggingFaceName(_ name: String, architecture: ModelArchitecture) -> String? {
        guard let (kind, layer) = ModelSchema.kind(ggufName: name, architecture: architecture) else { return nil }
        return layer.map { ModelSchema.layerPrefix($0) + kind.name } ?? kind.name
    }

    /// `{arch}.attention.sliding_window_pattern`: a per-layer bool array (true = sliding), or a
    /// period n (n - 1 sliding layers, then a full one); absent, llama.cpp's per-architecture
    /// default (2 for Gemma 2, 6 for Gemma 3), which matches transformers' layer_types for
    /// every released model.
    static func layerTypes(_ value: GGUFValue?, layers: Int, defaultPattern: Int,
                           bad: (String) -> ConversionError) throws(ConversionError) -> [String] {
        if let list = value?.array {
            let flags = list.compactMap(\.bool)
            guard flags.count == list.count, flags.count == layers else {
                throw bad("attention.sliding_window_pattern = \(value!) is not one bool per layer (\(layers) layers)")
            }
            return flags.map { $0 ? ModelConfig.slidingAttention : ModelConfig.fullAttention }
        }
        var pattern = defaultPattern
        if let value {
            guard let n = value.integer, n >= 0, n <= 1 << 20 else {
                throw bad("attention.sliding_window_pattern = \(value) is not a layer count")
            }
            pattern = n
        }
        // llama.cpp's llama_hparams::set_swa_pattern: pattern 0 means every layer slides.
        return (0..<layers).map { pattern == 0 || $0 % pattern < pattern - 1 ? ModelConfig.slidingAttention : ModelConfig.fullAttention }
    }

    /// The vocabulary from `tokenizer.ggml.*` as llama.cpp's tokenizer uses it, with settings
    /// that make the tokenizer follow llama.cpp (`semantics: "llama.cpp"`), so that a GGUF model
    /// encodes text into the ids llama.cpp gives it.
    ///
    /// llama.cpp's converter (`_create_vocab_sentencepiece` and the added-token handling in
    /// conversion/base.py) starts from tokenizer.model and then, for every token listed in
    /// tokenizer_config.json's added_tokens_decoder (for Gemma: all control and user-defined
    /// pieces), sets the score to -1000 and the type to CONTROL when the token is "special" or
    /// looks special (for Gemma: `<mask>`, `<2mass>`, `[@BOS@]`, `<unusedN>`), else to
    /// USER_DEFINED with every `▁` written as a space. Loading the file, llama.cpp then makes a
    /// few more tokens CONTROL by their text (`llamaCppLoadTimeTypes`). The import keeps all
    /// of that (types, scores -1000 included: llama.cpp's BPE merges by them), except:
    /// - USER_DEFINED pieces are written with `▁` for spaces again, as the model file writes
    ///   every piece (the llama.cpp tokenizer reads them back with spaces);
    /// - the unknown id (`tokenizer.ggml.unknown_token_id`; Gemma's GGUFs have it CONTROL) is
    ///   UNKNOWN, which llama.cpp's encoder treats exactly like CONTROL.
    /// So plain text never matches `<mask>`, `<unused0>` or `</s>` (llama.cpp spells them out),
    /// which a model converted from tokenizer.model, with SentencePiece's semantics, does.
    static func vocabulary(_ meta: [String: GGUFValue], file: String,
                           notices: inout [String]) throws(ConversionError) -> (TokenizerVocabulary, TokenizerSettings) {
        func bad(_ why: String) -> ConversionError { .invalidGGUF(file: file, reason: why) }
        guard let model = meta["tokenizer.ggml.model"]?.string else { throw bad("no tokenizer.ggml.model (no tokenizer in the file)") }
        guard model == "llama" else {
            throw bad("tokenizer.ggml.model = \(model.debugDescription): only SentencePiece vocabularies (\"llama\") are supported")
        }
        guard let tokenValues = meta["tokenizer.ggml.tokens"]?.array, !tokenValues.isEmpty else {
            throw bad("tokenizer.ggml.tokens is missing or empty")
        }
        let count = tokenValues.count
        guard count <= 1 << 22 else { throw bad("\(count) tokens is more than the model file holds") }
        var pieces: [String] = []
        pieces.reserveCapacity(count)
        for (i, v) in tokenValues.enumerated() {
            guard let s = v.string else { throw bad("tokenizer.ggml.tokens[\(i)] is not a string") }
            guard !s.isEmpty, s.utf8.count <= 65535 else { throw bad("tokenizer.ggml.tokens[\(i)] is empty or too long") }
            pieces.append(s)
        }
        var scores = [Float](repeating: 0, count: count)
        if let list = meta["tokenizer.ggml.scores"]?.array {
            guard list.count == count else { throw bad("\(list.count) token scores for \(count) tokens") }
            for (i, v) in list.enumerated() {
                guard case .float32(let f) = v, f.isFinite else { throw bad("tokenizer.ggml.scores[\(i)] is not a finite float32") }
                scores[i] = f
            }
        }
        var types = [TokenizerVocabulary.PieceType](repeating: .normal, count: count)
        if let list = meta["tokenizer.ggml.token_type"]?.array {
            guard list.count == count else { throw bad("\(list.count) token types for \(count) tokens") }
            for (i, v) in list.enumerated() {
                guard let n = v.integer, n >= 1, n <= 6, let t = TokenizerVocabulary.PieceType(rawValue: UInt8(n)) else {
                    throw bad("tokenizer.ggml.token_type[\(i)] = \(v) is not a SentencePiece piece type (1-6)")
                }
                types[i] = t
            }
        }
        func tokenId(_ key: String, default value: Int) throws(ConversionError) -> Int {
            guard let v = meta["tokenizer.ggml.\(key)"] else { return value }
            guard let n = v.integer else { throw bad("tokenizer.ggml.\(key) = \(v) is not an integer") }
            // llama.cpp writes -1 (as uint32 0xFFFFFFFF) for "none".
            if n == -1 || n == Int(UInt32.max) { return -1 }
            guard n >= 0, n < count else { throw bad("tokenizer.ggml.\(key) = \(n) is not a token id (\(count) tokens)") }
            return n
        }
        let bos = try tokenId("bos_token_id", default: 1)
        let eos = try tokenId("eos_token_id", default: 2)
        let unk = try tokenId("unknown_token_id", default: 0)
        let pad = try tokenId("padding_token_id", default: -1)
        guard unk >= 0 else { throw bad("the vocabulary has no unknown token") }
        guard bos >= 0, eos >= 0 else { throw bad("the vocabulary has no BOS or EOS token") }

        llamaCppLoadTimeTypes(&types, pieces: pieces, meta: meta)
        for i in 0..<count where types[i] == .userDefined {
            // llama.cpp matches the text literally, spaces and all; the file writes spaces as ▁,
            // so a ▁ of its own could not be told apart (llama.cpp's converter never writes one).
            guard !pieces[i].contains("\u{2581}") else {
                throw bad("user-defined token \(i) \(pieces[i].debugDescription) contains U+2581 (▁), which the model file uses for spaces")
            }
            if pieces[i].contains(" ") { pieces[i] = pieces[i].replacingOccurrences(of: " ", with: "\u{2581}") }
        }
        types[unk] = .unknown
        guard types.filter({ $0 == .unknown }).count == 1 else {
            throw bad("tokenizer.ggml.token_type marks more than one token UNKNOWN")
        }

        if meta["tokenizer.ggml.add_bos_token"]?.bool == false {
            notices.append("the GGUF says not to add BOS (tokenizer.ggml.add_bos_token = false); Gemma prompts start with <bos> regardless")
        }
        if meta["tokenizer.ggml.add_eos_token"]?.bool == true {
            notices.append("the GGUF asks to append EOS to every prompt (tokenizer.ggml.add_eos_token); ignored")
        }
        if let map = meta["tokenizer.ggml.precompiled_charsmap"], map.array?.isEmpty == false {
            throw bad("tokenizer.ggml.precompiled_charsmap (a SentencePiece normalization map) is not supported")
        }
        let settings = TokenizerSettings(
            model: "bpe", bosId: bos, eosId: eos, padId: pad, unkId: unk,
            // llama.cpp's defaults for a SentencePiece vocabulary when the keys are absent.
            addDummyPrefix: meta["tokenizer.ggml.add_space_prefix"]?.bool ?? true,
            removeExtraWhitespaces: meta["tokenizer.ggml.remove_extra_whitespaces"]?.bool ?? false,
            escapeWhitespaces: true, byteFallback: types.contains(.byte), normalizer: "identity",
            semantics: .llamaCpp)
        let vocabulary = TokenizerVocabulary(pieces: pieces, scores: scores, types: types)
        do { _ = try Tokenizer(vocabulary: vocabulary, settings: settings) } catch {
            throw bad("the vocabulary cannot make a tokenizer: \(error)")
        }
        return (vocabulary, settings)
    }

    /// The token types llama.cpp changes when it loads a vocabulary (llama_vocab::impl::load),
    /// by the token's text, as far as they concern the tokenizer:
    /// - each fill-in-the-middle role (prefix, suffix, middle, pad, repo, separator) whose id the
    ///   GGUF does not give gets a token found by its text, which becomes CONTROL (where several
    ///   texts of one role are present llama.cpp takes the first it meets in a hash map, the
    ///   import the lowest id; one per role in practice);
    /// - the tokens whose text ends generation (`<end_of_turn>`, `<eos>`, `</s>`, `<|im_end|>`,
    ///   ...) become CONTROL: for Gemma 3 that is `</s>`, USER_DEFINED in the GGUF;
    /// - for other model families (gpt-oss, Gemma 4, PLaMo) a few of those go back to
    ///   USER_DEFINED or NORMAL.
    /// A CONTROL token keeps its other attributes in llama.cpp; for tokenizing, CONTROL is what
    /// counts (it is matched only when parsing special tokens).
    static func llamaCppLoadTimeTypes(_ types: inout [TokenizerVocabulary.PieceType], pieces: [String],
                                      meta: [String: GGUFValue]) {
        var idsByText: [String: Int] = [:]
        for (i, p) in pieces.enumerated() where idsByText[p] == nil { idsByText[p] = i }
        func given(_ keys: [String]) -> Bool {
            keys.contains { key in meta["tokenizer.ggml.\(key)"]?.integer.map { $0 >= 0 && $0 < pieces.count } ?? false }
        }
        for (keys, texts) in llamaCppFIMRoles where !given(keys) {
            if let id = texts.compactMap({ idsByText[$0] }).min() { types[id] = .control }
        }
        for text in llamaCppEndOfGenerationTexts {
            if let id = idsByText[text] { types[id] = .control }
        }
        for text in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
            if let id = idsByText[text] { types[id] = .userDefined }  // gpt-oss
        }
        let has = { (text: String) in idsByText[text] != nil }
        if let end = idsByText["<|end|>"], has("<|return|>") || has("<|flush|>"), has("<|call|>") || has("<|calls|>") {
            types[end] = .userDefined  // gpt-oss, Solar Open: not an end of generation
        }
        let eos = meta["tokenizer.ggml.eos_token_id"]?.integer
        if let s = idsByText["</s>"], has("<|tool_response>") || (eos.map { $0 >= 0 && $0 < pieces.count && pieces[$0] == "<|plamo:eos|>" } ?? false) {
            types[s] = .normal  // Gemma 4, PLaMo: an ordinary token
        }
    }

    /// Texts llama.cpp's loader treats as ending generation (and makes CONTROL).
    static let llamaCppEndOfGenerationTexts = [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
        "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
        "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>", "<\u{FF5C}end\u{2581}of\u{2581}sentence\u{FF5C}>", "[e~[",
    ]

    /// Fill-in-the-middle roles: the GGUF keys that give the id, and the texts llama.cpp's
    /// loader looks for otherwise. (Its end-of-turn and end-of-message texts are all in
    /// `llamaCppEndOfGenerationTexts`.)
    static let llamaCppFIMRoles: [(keys: [String], texts: [String])] = [
        (["fim_pre_token_id", "prefix_token_id"],
         ["<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\u{FF5C}fim\u{2581}begin\u{FF5C}>", "<PRE>", "\u{2581}<PRE>",
          "<|code_prefix|>", "<|prefix|>"]),
        (["fim_suf_token_id", "suffix_token_id"],
         ["<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\u{FF5C}fim\u{2581}hole\u{FF5C}>", "<SUF>", "\u{2581}<SUF>",
          "<|code_suffix|>", "<|suffix|>"]),
        (["fim_mid_token_id", "middle_token_id"],
         ["<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\u{FF5C}fim\u{2581}end\u{FF5C}>", "<MID>", "\u{2581}<MID>",
          "<|code_middle|>", "<|middle|>"]),
        (["fim_pad_token_id"], ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"]),
        (["fim_rep_token_id"], ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"]),
        (["fim_sep_token_id"], ["<|file_sep|>"]),
    ]

    /// "Q4_K_M-style mix: F32 ×109, Q4_K ×27, ..." for the provenance.
    var sourceTypes: String {
        var counts: [String: Int] = [:]
        for t in file.tensors { counts[t.type.name, default: 0] += 1 }
        let mix = counts.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
        let fileType = file.metadata["general.file_type"]?.integer.flatMap { Self.fileTypeNames[$0] }
        return "gguf " + (fileType.map { "\($0): " } ?? "") + mix
    }

    /// llama.cpp's llama_ftype names (general.file_type).
    static let fileTypeNames: [Int: String] = [
        0: "ALL_F32", 1: "MOSTLY_F16", 2: "MOSTLY_Q4_0", 3: "MOSTLY_Q4_1", 7: "MOSTLY_Q8_0", 8: "MOSTLY_Q5_0",
        9: "MOSTLY_Q5_1", 10: "MOSTLY_Q2_K", 11: "MOSTLY_Q3_K_S", 12: "MOSTLY_Q3_K_M", 13: "MOSTLY_Q3_K_L",
        14: "MOSTLY_Q4_K_S", 15: "MOSTLY_Q4_K_M", 16: "MOSTLY_Q5_K_S", 17: "MOSTLY_Q5_K_M", 18: "MOSTLY_Q6_K",
        32: "MOSTLY_BF16",
    ]

    var sourceFiles: [Provenance.SourceFile] {
        [.init(name: (file.path as NSString).lastPathComponent, size: file.fileSize)]
    }
}

/// A readable description of a GGUF file as the converter sees it (`gemma-quantize inspect`).
public enum GGUFInspector {
    public static func describe(path: String) throws(ConversionError) -> String {
        let file = try GGUFFile(path: path)
        var lines = ["file: \(path) (\(file.fileSize) bytes)",
                     "GGUF version \(file.version), alignment \(file.alignment), data at \(file.dataOffset), \(file.keys.count) metadata keys, \(file.tensors.count) tensors"]
        lines.append("metadata:")
        for key in file.keys { lines.append("  \(key) = \(file.metadata[key]!)") }
        let checkpoint = try GGUFCheckpoint(path: path)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        if let json = try? encoder.encode(checkpoint.config) {
            lines.append("config (as converted): " + String(decoding: json, as: UTF8.self))
        }
        if let json = try? encoder.encode(checkpoint.tokenizerSettings) {
            lines.append("tokenizer (as converted): \(checkpoint.vocabulary.count) pieces, " + String(decoding: json, as: UTF8.self))
        }
        for notice in checkpoint.notices { lines.append("note: \(notice)") }
        for (name, reason) in checkpoint.ignored { lines.append("ignored \(name): \(reason)") }
        let hfNames = Dictionary(uniqueKeysWithValues: checkpoint.tensors.map { ($0.value.name, $0.key) })
        lines.append("name".padding(toLength: 30, withPad: " ", startingAt: 0) + " type    shape (PyTorch order)  bytes        converted as")
        for t in file.tensors {
            let shape = t.shape.map(String.init).joined(separator: "x")
            let supported = gt_gguf_can_dequantize(Int32(t.type.id)) != 0 ? "" : " (cannot dequantize)"
            lines.append(t.name.padding(toLength: 30, withPad: " ", startingAt: 0) + " "
                         + t.type.name.padding(toLength: 7, withPad: " ", startingAt: 0) + " "
                         + shape.padding(toLength: 22, withPad: " ", startingAt: 0) + " "
                         + String(t.byteCount).padding(toLength: 12, withPad: " ", startingAt: 0) + " "
                         + (hfNames[t.name] ?? "-") + supported)
        }
        return lines.joined(separator: "\n")
    }
}
