import Foundation
import GemmaTiny

// The subset of the OpenAI API that gemma-tiny serves. Requests are decoded leniently where
// OpenAI is (unknown fields are ignored, `null` means absent) and strictly where a value would
// change the result (wrong types are a 400 naming the field).

/// `stop`: one string or an array of strings.
struct StopField: Decodable {
    var values: [String]

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) {
            values = [s]
        } else if let a = try? c.decode([String].self) {
            values = a
        } else {
            throw DecodingError.typeMismatch([String].self, .init(codingPath: decoder.codingPath,
                debugDescription: "expected a string or an array of strings"))
        }
    }
}

/// The fields both endpoints share.
struct SamplingFields: Decodable {
    var model: String?
    var temperature: Double?
    var topP: Double?
    var topK: Int?
    var minP: Double?
    var repetitionPenalty: Double?
    var maxTokens: Int?
    var maxCompletionTokens: Int?
    var stop: StopField?
    var seed: Int64?
    var stream: Bool?
    var streamOptions: StreamOptions?
    var n: Int?
    /// Asked for token log-probabilities (chat: `logprobs: true`; completions: `logprobs: N > 0`;
    /// either: `top_logprobs: N > 0`): refused, as `n` > 1 is, rather than silently ignored.
    var wantsLogprobs: String?

    struct StreamOptions: Decodable {
        var includeUsage: Bool?
        enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
    }

    enum CodingKeys: String, CodingKey {
        case model, temperature, stop, seed, stream, n, logprobs
        case topLogprobs = "top_logprobs"
        case topP = "top_p", topK = "top_k", minP = "min_p", repetitionPenalty = "repetition_penalty"
        case repeatPenalty = "repeat_penalty"
        case maxTokens = "max_tokens", maxCompletionTokens = "max_completion_tokens"
        case streamOptions = "stream_options"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decodeIfPresent(String.self, forKey: .model)
        temperature = try c.decodeIfPresent(Double.self, forKey: .temperature)
        topP = try c.decodeIfPresent(Double.self, forKey: .topP)
        topK = try Self.integer(c, .topK)
        minP = try c.decodeIfPresent(Double.self, forKey: .minP)
        repetitionPenalty = try c.decodeIfPresent(Double.self, forKey: .repetitionPenalty)
            ?? c.decodeIfPresent(Double.self, forKey: .repeatPenalty)
        maxTokens = try Self.integer(c, .maxTokens)
        maxCompletionTokens = try Self.integer(c, .maxCompletionTokens)
        stop = try c.decodeIfPresent(StopField.self, forKey: .stop)
        seed = try Self.integer(c, .seed)
        stream = try c.decodeIfPresent(Bool.self, forKey: .stream)
        streamOptions = try c.decodeIfPresent(StreamOptions.self, forKey: .streamOptions)
        n = try Self.integer(c, .n)
        if let asked = try? c.decodeIfPresent(Bool.self, forKey: .logprobs) {
            if asked { wantsLogprobs = "logprobs" }
        } else if let count: Int = try Self.integer(c, .logprobs), count > 0 {
            wantsLogprobs = "logprobs"
        }
        if let count: Int = try Self.integer(c, .topLogprobs), count > 0 { wantsLogprobs = "top_logprobs" }
    }

    /// An integer field. Foundation reports a number that is not an integer (2.5, 1e30) as
    /// invalid JSON with no coding path; this names the field instead.
    static func integer<T: FixedWidthInteger & Decodable>(_ c: KeyedDecodingContainer<CodingKeys>,
                                                          _ key: CodingKeys) throws -> T? {
        do {
            return try c.decodeIfPresent(T.self, forKey: key)
        } catch {
            if let d = try? c.decodeIfPresent(Double.self, forKey: key) {
                throw DecodingError.typeMismatch(T.self, .init(codingPath: c.codingPath + [key],
                    debugDescription: "\(d) is not an integer in range"))
            }
            throw error
        }
    }

    /// Generation options: the server's defaults, overridden by the request's fields.
    func generationOptions(defaults: SamplingOptions, defaultMaxTokens: Int?) throws(APIError) -> GenerationOptions {
        var sampling = defaults
        if let t = temperature {
            guard t.isFinite, t >= 0, t <= 2 else { throw .badRequest("temperature must be between 0 and 2, got \(t)", param: "temperature") }
            sampling.temperature = Float(t)
        }
        if let p = topP {
            guard p.isFinite, p >= 0, p <= 1 else { throw .badRequest("top_p must be between 0 and 1, got \(p)", param: "top_p") }
            // top_p 0 keeps only the most likely token, as in OpenAI's API.
            sampling.topP = p == 0 ? Float.leastNormalMagnitude : Float(p)
        }
        if let k = topK {
            guard k >= 0 else { throw .badRequest("top_k must be >= 0 (0 = off), got \(k)", param: "top_k") }
            sampling.topK = k
        }
        if let m = minP {
            guard m.isFinite, m >= 0, m <= 1 else { throw .badRequest("min_p must be between 0 and 1, got \(m)", param: "min_p") }
            sampling.minP = Float(m)
        }
        if let r = repetitionPenalty {
            guard r.isFinite, r > 0 else { throw .badRequest("repetition_penalty must be > 0, got \(r)", param: "repetition_penalty") }
            sampling.repetitionPenalty = Float(r)
        }
        if let s = seed { sampling.seed = UInt64(bitPattern: s) }
        var maxTokens = defaultMaxTokens
        for (value, name) in [(self.maxCompletionTokens, "max_completion_tokens"), (self.maxTokens, "max_tokens")] {
            guard let value else { continue }
            guard value >= 1 else { throw .badRequest("\(name) must be at least 1, got \(value)", param: name) }
            maxTokens = value
            break
        }
        if let n, n != 1 { throw .badRequest("only n = 1 is supported, got \(n)", param: "n") }
        if let wantsLogprobs { throw .badRequest("\(wantsLogprobs) is not supported", param: wantsLogprobs) }
        let stops = stop?.values ?? []
        guard stops.count <= 16 else { throw .badRequest("at most 16 stop sequences are supported, got \(stops.count)", param: "stop") }
        return GenerationOptions(maxTokens: maxTokens, sampling: sampling, stopSequences: stops)
    }
}

/// `POST /v1/chat/completions`.
struct ChatCompletionRequest: Decodable {
    var messages: [ChatMessage]
    var fields: SamplingFields

    struct Message: Decodable {
        var role: String
        var content: String

        enum CodingKeys: String, CodingKey { case role, content }
        struct Part: Decodable {
            var type: String
            var text: String?
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            role = try c.decode(String.self, forKey: .role)
            if try c.decodeNil(forKey: .content) {
                content = ""
            } else if let s = try? c.decode(String.self, forKey: .content) {
                content = s
            } else if let parts = try? c.decode([Part].self, forKey: .content) {
                var text = ""
                for p in parts {
                    guard p.type == "text", let t = p.text else {
                        throw DecodingError.dataCorruptedError(forKey: .content, in: c,
                            debugDescription: "only text content parts are supported, got \"\(p.type)\"")
                    }
                    text += t
                }
                content = text
            } else {
                throw DecodingError.typeMismatch(String.self, .init(codingPath: c.codingPath + [CodingKeys.content],
                    debugDescription: "expected a string or an array of text parts"))
            }
        }
    }

    enum CodingKeys: String, CodingKey { case messages }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let raw = try c.decode([Message].self, forKey: .messages)
        var messages: [ChatMessage] = []
        for (i, m) in raw.enumerated() {
            let role: ChatRole
            switch m.role {
            case "system", "developer": role = .system
            case "user": role = .user
            case "assistant", "model": role = .assistant
            default:
                throw DecodingError.dataCorrupted(.init(codingPath: [CodingKeys.messages, IndexKey(i), Message.CodingKeys.role],
                    debugDescription: "unsupported role \"\(m.role)\" (use system, user or assistant)"))
            }
            messages.append(ChatMessage(role: role, content: m.content))
        }
        self.messages = messages
        fields = try SamplingFields(from: decoder)
    }
}

/// `POST /v1/completions`. `prompt`: a string, or an array of exactly one string, or token ids
/// (an array of integers, or an array of exactly one such array).
struct CompletionRequest: Decodable {
    enum Prompt {
        case text(String)
        case tokens([Int])
    }

    var prompt: Prompt
    var echo: Bool?
    var fields: SamplingFields

    enum CodingKeys: String, CodingKey { case prompt, echo }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let s = try? c.decode(String.self, forKey: .prompt) {
            prompt = .text(s)
        } else if let a = try? c.decode([String].self, forKey: .prompt) {
            guard a.count == 1 else {
                throw DecodingError.dataCorruptedError(forKey: .prompt, in: c,
                    debugDescription: "only one prompt per request is supported, got \(a.count)")
            }
            prompt = .text(a[0])
        } else if let t = try? c.decode([Int].self, forKey: .prompt) {
            prompt = .tokens(t)
        } else if let t = try? c.decode([[Int]].self, forKey: .prompt) {
            guard t.count == 1 else {
                throw DecodingError.dataCorruptedError(forKey: .prompt, in: c,
                    debugDescription: "only one prompt per request is supported, got \(t.count)")
            }
            prompt = .tokens(t[0])
        } else if c.contains(.prompt) {
            throw DecodingError.typeMismatch(String.self, .init(codingPath: [CodingKeys.prompt],
                debugDescription: "expected a string, an array of one string, or token ids"))
        } else {
            throw DecodingError.keyNotFound(CodingKeys.prompt, .init(codingPath: [], debugDescription: "prompt is required"))
        }
        echo = try c.decodeIfPresent(Bool.self, forKey: .echo)
        fields = try SamplingFields(from: decoder)
    }
}

struct IndexKey: CodingKey {
    var intValue: Int?
    var stringValue: String
    init(_ i: Int) { intValue = i; stringValue = "Index \(i)" }
    init?(intValue: Int) { self.init(intValue) }
    init?(stringValue: String) { return nil }
}

// MARK: Responses

struct UsageBody: Encodable {
    var promptTokens: Int
    var completionTokens: Int
    var totalTokens: Int
    var promptTokensDetails: Details

    struct Details: Encodable {
        var cachedTokens: Int
        enum CodingKeys: String, CodingKey { case cachedTokens = "cached_tokens" }
    }

    init(_ u: TokenUsage) {
        promptTokens = u.promptTokens
        completionTokens = u.completionTokens
        totalTokens = u.totalTokens
        promptTokensDetails = Details(cachedTokens: u.cachedPromptTokens)
    }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens"
        case promptTokensDetails = "prompt_tokens_details"
    }
}

/// OpenAI's finish reasons: "stop" (end of turn, end of sequence, a stop string, a closed JSON
/// reply) or "length".
func finishReason(_ reason: StopReason) -> String {
    switch reason {
    case .endOfSequence, .endOfTurn, .stopSequence, .responseComplete, .cancelled: return "stop"
    case .maxTokens, .contextFull: return "length"
    }
}

struct ChatCompletionBody: Encodable {
    struct Choice: Encodable {
        var index = 0
        var message: Message
        var finishReason: String
        enum CodingKeys: String, CodingKey { case index, message, finishReason = "finish_reason", logprobs }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(message, forKey: .message)
            try c.encode(finishReason, forKey: .finishReason)
            try c.encodeNil(forKey: .logprobs)
        }
    }

    struct Message: Encodable {
        var role = "assistant"
        var content: String
    }

    var id: String
    var object = "chat.completion"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: UsageBody
}

struct ChatChunkBody: Encodable {
    struct Choice: Encodable {
        var index = 0
        var delta: Delta
        var finishReason: String?
        enum CodingKeys: String, CodingKey { case index, delta, finishReason = "finish_reason", logprobs }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(delta, forKey: .delta)
            try c.encode(finishReason, forKey: .finishReason)
            try c.encodeNil(forKey: .logprobs)
        }
    }

    struct Delta: Encodable {
        var role: String?
        var content: String?
    }

    var id: String
    var object = "chat.completion.chunk"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: UsageBody?
}

struct CompletionBody: Encodable {
    struct Choice: Encodable {
        var text: String
        var index = 0
        var finishReason: String?
        enum CodingKeys: String, CodingKey { case text, index, finishReason = "finish_reason", logprobs }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(text, forKey: .text)
            try c.encode(index, forKey: .index)
            try c.encode(finishReason, forKey: .finishReason)
            try c.encodeNil(forKey: .logprobs)
        }
    }

    var id: String
    var object = "text_completion"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: UsageBody?
}

struct ModelBody: Encodable {
    var id: String
    var object = "model"
    var created: Int
    var ownedBy = "gemma-tiny"
    enum CodingKeys: String, CodingKey { case id, object, created, ownedBy = "owned_by" }
}

struct ModelListBody: Encodable {
    var object = "list"
    var data: [ModelBody]
}

/// The `param` an OpenAI error names for a decoding error's coding path: `messages[0].content`.
func parameterName(_ path: [any CodingKey]) -> String? {
    guard !path.isEmpty else { return nil }
    var s = ""
    for key in path {
        if let i = key.intValue {
            s += "[\(i)]"
        } else {
            if !s.isEmpty { s += "." }
            s += key.stringValue
        }
    }
    return s
}

/// A 400 for a request body that does not decode.
func decodingAPIError(_ error: any Error, body: Data? = nil) -> APIError {
    switch error {
    case DecodingError.dataCorrupted(let ctx):
        if ctx.codingPath.isEmpty {
            let detail = (ctx.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            return .badRequest("The request body is not valid JSON" + (detail.map { ": \($0)" } ?? ""), code: "invalid_json")
        }
        let param = parameterName(ctx.codingPath)
        return .badRequest("Invalid value for '\(param ?? "")': \(ctx.debugDescription)", param: param)
    case DecodingError.keyNotFound(let key, let ctx):
        let param = parameterName(ctx.codingPath + [key])
        return .badRequest("Missing required parameter: '\(param ?? key.stringValue)'", param: param)
    case DecodingError.typeMismatch(let type, let ctx):
        let param = parameterName(ctx.codingPath)
        if ctx.codingPath.isEmpty { return .badRequest("The request body must be a JSON object", code: "invalid_json") }
        if type == String.self, let body, containsSurrogateEscape(body) {
            return .badRequest("Invalid value for '\(param ?? "")': the string has an unpaired UTF-16 surrogate escape (\\uD800-\\uDFFF), which is not valid Unicode",
                               param: param)
        }
        let expected = type == String.self ? "a string" : type == Int.self || type == Int64.self ? "an integer"
            : type == Double.self ? "a number" : type == Bool.self ? "a boolean" : "\(type)"
        return .badRequest("Invalid type for '\(param ?? "")': expected \(expected). \(ctx.debugDescription)", param: param)
    case DecodingError.valueNotFound(_, let ctx):
        if ctx.codingPath.isEmpty { return .badRequest("The request body must be a JSON object, not null", code: "invalid_json") }
        let param = parameterName(ctx.codingPath)
        return .badRequest("Invalid value for '\(param ?? "")': it must not be null", param: param)
    default:
        return .badRequest("The request body cannot be decoded: \(error)")
    }
}

/// True when the JSON text has a `\\u` escape of a UTF-16 surrogate (D800-DFFF). Foundation
/// decodes an unpaired one as a failure to read a string, with no word of why.
func containsSurrogateEscape(_ json: Data) -> Bool {
    String(decoding: json, as: UTF8.self).range(of: #"\\u[dD][89a-fA-F][0-9a-fA-F]{2}"#, options: .regularExpression) != nil
}

/// The offset of the first byte that is not valid UTF-8, nil when all of `bytes` is.
func firstInvalidUTF8Offset(_ bytes: Data) -> Int? {
    var parser = Unicode.UTF8.ForwardParser()
    var iterator = bytes.makeIterator()
    var offset = 0
    while true {
        switch parser.parseScalar(from: &iterator) {
        case .valid(let scalar): offset += scalar.count
        case .error: return offset
        case .emptyInput: return nil
        }
    }
}
