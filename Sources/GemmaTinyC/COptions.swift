import CGemmaTiny
import GemmaTiny

/// A `gt_options` read into Swift: what a generation uses, and the load-time fields.
struct CallOptions {
    var generation: GenerationOptions
    var threads: Int
    /// nil = the model's maximum.
    var contextLength: Int?

    static var defaults: gt_options {
        gt_options(
            max_tokens: 256, temperature: 0.8, top_k: 40, top_p: 0.95, min_p: 0.05,
            repeat_penalty: 1, repeat_last_n: 64, seed: UInt64.max, stop: nil, n_stop: 0,
            threads: 0, context_length: 0, json_schema: nil, json_object: 0)
    }

    /// Reads and checks every field (the load-time ones too). NULL = the defaults.
    init(_ pointer: UnsafePointer<gt_options>?) throws {
        let o = pointer?.pointee ?? Self.defaults
        func invalid(_ message: String) -> CABIError { CABIError(GT_ERR_INVALID_OPTIONS, message) }

        guard o.max_tokens >= -1 else { throw invalid("max_tokens must be >= -1 (-1 = no limit), got \(o.max_tokens)") }
        let sampling = SamplingOptions(
            temperature: o.temperature, topK: Int(o.top_k), topP: o.top_p, minP: o.min_p,
            repetitionPenalty: o.repeat_penalty, repetitionWindow: Int(o.repeat_last_n),
            seed: o.seed == UInt64.max ? nil : o.seed)
        do {
            try sampling.validate()
        } catch {
            throw invalid(error.description)
        }
        var stops: [String] = []
        // A size_t above Int.max arrives negative: no list is that long.
        guard o.n_stop >= 0 else { throw invalid("n_stop is \(UInt(bitPattern: o.n_stop)): no stop list is that long") }
        if o.n_stop > 0 {
            guard let list = o.stop else { throw invalid("stop is NULL but n_stop is \(o.n_stop)") }
            for i in 0..<o.n_stop {
                do {
                    stops.append(try utf8String(list[i], "stop[\(i)]"))
                } catch let e as CABIError {
                    throw invalid(e.message)
                }
            }
        }
        var format = ResponseFormat.text
        if let pointer = o.json_schema {
            guard o.json_object == 0 else { throw invalid("json_schema and json_object are both set: set one") }
            let schema: String
            do {
                schema = try utf8String(pointer, "json_schema")
            } catch let e as CABIError {
                throw invalid(e.message)
            }
            do throws(JSONSchemaError) {
                try JSONSchemaCompiler.validate(schema: schema)
            } catch {
                throw invalid("json_schema: \(error.message)")
            }
            format = .jsonSchema(schema)
        } else if o.json_object != 0 {
            format = .jsonObject
        }
        guard o.threads >= 0 else { throw invalid("threads must be >= 0 (0 = one per core), got \(o.threads)") }
        guard o.context_length >= 0 else {
            throw invalid("context_length must be >= 0 (0 = the model's maximum), got \(o.context_length)")
        }
        generation = GenerationOptions(maxTokens: o.max_tokens < 0 ? nil : Int(o.max_tokens), sampling: sampling,
                                       stopSequences: stops, responseFormat: format)
        threads = Int(o.threads)
        contextLength = o.context_length == 0 ? nil : Int(o.context_length)
    }
}

@_cdecl("gt_options_default")
public func gt_options_default_impl() -> gt_options {
    CallOptions.defaults
}
