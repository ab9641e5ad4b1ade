extension ResponseFormat {
    /// The `response_format` of an OpenAI chat or completion request body (JSON text), nil when
    /// the request has none. Read from the text itself rather than through `Codable`, which
    /// loses the order of the schema's `properties` (the order replies are written in).
    ///
    /// Accepts `{"type": "text"}`, `{"type": "json_object"}` and
    /// `{"type": "json_schema", "json_schema": {"name", "schema", "strict", "description"}}`;
    /// the schema is checked (``JSONSchemaCompiler``). Errors name what is wrong.
    public static func openAI(requestBody: String) throws(JSONSchemaError) -> ResponseFormat? {
        let body: JSONValue
        do {
            body = try JSONValueParser.parse(requestBody)
        } catch {
            throw JSONSchemaError(keyword: nil, message: "the request body is not valid JSON: \(error.message)")
        }
        guard let format = body["response_format"], format != .null else { return nil }
        guard case .object = format else {
            throw JSONSchemaError(keyword: "response_format", message: "response_format must be an object")
        }
        switch format["type"] {
        case .string("text")?: return .text
        case .string("json_object")?: return .jsonObject
        case .string("json_schema")?:
            guard let spec = format["json_schema"], case .object = spec else {
                throw JSONSchemaError(keyword: "json_schema",
                                      message: "response_format of type json_schema needs a json_schema object")
            }
            guard let schema = spec["schema"] else {
                // OpenAI's schema is optional: without one, any JSON value... an object, as json_object.
                return .jsonObject
            }
            let text = schema.serialized
            try JSONSchemaCompiler.validate(schema: text)
            return .jsonSchema(text)
        case .string(let other)?:
            throw JSONSchemaError(keyword: "type",
                                  message: "response_format type '\(other)' is not supported (text, json_object or json_schema)")
        default:
            throw JSONSchemaError(keyword: "type", message: "response_format needs a type (text, json_object or json_schema)")
        }
    }
}
