import Foundation

/// A JSON Schema the decoder cannot enforce: the message names the keyword or the problem.
public struct JSONSchemaError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The keyword that is not supported or is used wrongly, nil for a schema that is not JSON.
    public var keyword: String?
    public var message: String

    public var description: String { message }
}

/// Compiles a JSON Schema into the grammar the decoder enforces.
///
/// Supported: `type` (one name or a list), `properties`, `required`, `additionalProperties`
/// (`false`, `true` or a schema), `items`, `minItems`, `maxItems`, `enum`, `const`, `anyOf`,
/// `$ref` to `#`, `#/$defs/NAME` or `#/definitions/NAME` (recursion included), and the
/// annotations `title`, `description`, `default`, `examples`, `$schema`, `$id`, `$comment`,
/// `$defs`, `definitions`. Any other keyword is refused by name rather than ignored, so a reply
/// never fails a constraint that was silently dropped (`pattern`, `minimum`, `oneOf`, ...).
///
/// Generation choices (documented in docs/STRUCTURED-OUTPUT.md):
/// - properties are written in the schema's order, optional ones may be left out;
/// - an object with `properties` gets no other keys unless `additionalProperties` is `true` or a
///   schema; an object schema without `properties` allows any keys (as `json_object`);
/// - numbers have at most 18 integer digits, 16 fraction digits and 2 exponent digits (always a finite double).
public enum JSONSchemaCompiler {
    /// Checks that `schema` (JSON text) can be enforced; throws the reason it cannot.
    public static func validate(schema: String) throws(JSONSchemaError) {
        _ = try compile(schema: schema)
    }

    static func grammar(for format: ResponseFormat) throws(JSONSchemaError) -> JSONGrammar? {
        switch format {
        case .text: return nil
        case .jsonObject: return .jsonObject
        case .jsonSchema(let text): return try compile(schema: text)
        }
    }

    static func compile(schema text: String) throws(JSONSchemaError) -> JSONGrammar {
        let value: JSONValue
        do {
            value = try JSONValueParser.parse(text)
        } catch {
            throw JSONSchemaError(keyword: nil, message: "the schema is not valid JSON: \(error.message)")
        }
        var compiler = Compiler(root: value)
        compiler.grammar.root = try compiler.compile(value, path: "#")
        try compiler.checkNoEmptyCycles()
        return compiler.grammar
    }

    private static let annotations: Set<String> = [
        "title", "description", "default", "examples", "$schema", "$id", "$comment", "$defs", "definitions",
    ]
    private static let supported: Set<String> = annotations.union([
        "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
        "enum", "const", "anyOf", "$ref",
    ])

    private struct Compiler {
        let root: JSONValue
        var grammar = JSONGrammar()
        /// `$ref` targets already given a node (filled in later, so references can recurse).
        var refNodes: [String: Int] = [:]
        var anyNode: Int?

        init(root: JSONValue) { self.root = root }

        mutating func any() -> Int {
            if let anyNode { return anyNode }
            let n = grammar.addAnyValue()
            anyNode = n
            return n
        }

        func error(_ keyword: String?, _ message: String) -> JSONSchemaError {
            JSONSchemaError(keyword: keyword, message: message)
        }

        mutating func compile(_ schema: JSONValue, path: String) throws(JSONSchemaError) -> Int {
            switch schema {
            case .bool(true): return any()
            case .bool(false): throw error(nil, "the schema at \(path) is false: no value satisfies it")
            case .object: break
            default: throw error(nil, "the schema at \(path) must be an object or a boolean")
            }
            guard case .object(let members) = schema else { return any() }
            for m in members where !supported.contains(m.key) {
                throw error(m.key, "the JSON Schema keyword '\(m.key)' at \(path) is not supported")
            }
            let keys = Set(members.map(\.key)).subtracting(annotations)

            if let ref = schema["$ref"] {
                guard keys == ["$ref"] else {
                    throw error("$ref", "'$ref' at \(path) must be the only keyword of its schema")
                }
                return try reference(ref, path: path)
            }
            if let c = schema["const"] {
                guard keys == ["const"] else {
                    throw error("const", "'const' at \(path) must be the only keyword of its schema (besides annotations)")
                }
                return grammar.add(.literal(Array(c.serialized.utf8)))
            }
            if let e = schema["enum"] {
                guard keys == ["enum"] else {
                    throw error("enum", "'enum' at \(path) must be the only keyword of its schema (besides annotations)")
                }
                guard case .array(let values) = e, !values.isEmpty else {
                    throw error("enum", "'enum' at \(path) must be a non-empty array")
                }
                let literals = values.map { grammar.add(.literal(Array($0.serialized.utf8))) }
                return literals.count == 1 ? literals[0] : grammar.add(.anyOf(literals))
            }
            if let a = schema["anyOf"] {
                guard keys == ["anyOf"] else {
                    throw error("anyOf", "'anyOf' at \(path) must be the only keyword of its schema (besides annotations)")
                }
                guard case .array(let options) = a, !options.isEmpty else {
                    throw error("anyOf", "'anyOf' at \(path) must be a non-empty array")
                }
                var alternatives: [Int] = []
                for (i, option) in options.enumerated() {
                    alternatives.append(try compile(option, path: "\(path)/anyOf/\(i)"))
                }
                return grammar.add(.anyOf(alternatives))
            }

            var types: [String]
            switch schema["type"] {
            case .string(let t)?: types = [t]
            case .array(let list)?:
                types = []
                for item in list {
                    guard case .string(let t) = item else { throw error("type", "'type' at \(path) must name types") }
                    types.append(t)
                }
                guard !types.isEmpty else { throw error("type", "'type' at \(path) is an empty list") }
            case nil:
                if schema["properties"] != nil || schema["additionalProperties"] != nil || schema["required"] != nil {
                    types = ["object"]
                } else if schema["items"] != nil || schema["minItems"] != nil || schema["maxItems"] != nil {
                    types = ["array"]
                } else {
                    return any()
                }
            case .some: throw error("type", "'type' at \(path) must be a string or a list of strings")
            }
            var nodes: [Int] = []
            for t in types { nodes.append(try typed(t, schema, path: path)) }
            return nodes.count == 1 ? nodes[0] : grammar.add(.anyOf(nodes))
        }

        mutating func typed(_ type: String, _ schema: JSONValue, path: String) throws(JSONSchemaError) -> Int {
            switch type {
            case "string": return grammar.add(.string)
            case "number": return grammar.add(.number)
            case "integer": return grammar.add(.integer)
            case "boolean":
                let t = grammar.add(.literal(Array("true".utf8))), f = grammar.add(.literal(Array("false".utf8)))
                return grammar.add(.anyOf([t, f]))
            case "null": return grammar.add(.literal(Array("null".utf8)))
            case "array": return try array(schema, path: path)
            case "object": return try object(schema, path: path)
            default: throw error("type", "'type' at \(path) names an unknown type '\(type)'")
            }
        }

        mutating func array(_ schema: JSONValue, path: String) throws(JSONSchemaError) -> Int {
            var items: Int
            if let s = schema["items"] { items = try compile(s, path: "\(path)/items") } else { items = any() }
            let minItems = try count(schema, "minItems", path: path) ?? 0
            let maxItems = try count(schema, "maxItems", path: path) ?? .max
            guard minItems <= maxItems else {
                throw error("minItems", "'minItems' (\(minItems)) is larger than 'maxItems' (\(maxItems)) at \(path)")
            }
            return grammar.add(.array(items: items, minItems: minItems, maxItems: maxItems))
        }

        func count(_ schema: JSONValue, _ keyword: String, path: String) throws(JSONSchemaError) -> Int? {
            guard let v = schema[keyword] else { return nil }
            guard case .number(let text) = v, let n = Int(text), n >= 0 else {
                throw error(keyword, "'\(keyword)' at \(path) must be a non-negative integer")
            }
            return n
        }

        mutating func object(_ schema: JSONValue, path: String) throws(JSONSchemaError) -> Int {
            var properties: [(name: String, schema: JSONValue)] = []
            if let p = schema["properties"] {
                guard case .object(let members) = p else {
                    throw error("properties", "'properties' at \(path) must be an object")
                }
                properties = members.map { ($0.key, $0.value) }
            }
            var required: [String] = []
            if let r = schema["required"] {
                guard case .array(let names) = r else { throw error("required", "'required' at \(path) must be a list of names") }
                for n in names {
                    guard case .string(let name) = n else { throw error("required", "'required' at \(path) must be a list of names") }
                    required.append(name)
                }
            }
            // A required key the schema does not describe may hold any value.
            for name in required where !properties.contains(where: { $0.name == name }) {
                properties.append((name, .bool(true)))
            }
            var compiled: [JSONGrammar.Property] = []
            var seen = Set<String>()
            for (name, s) in properties where seen.insert(name).inserted {
                let key = grammar.add(.literal(Array(JSONValue.quoted(name).utf8)))
                let value = try compile(s, path: "\(path)/properties/\(name)")
                compiled.append(JSONGrammar.Property(keyNode: key, valueNode: value, required: required.contains(name)))
            }
            var additional: Int?
            switch schema["additionalProperties"] {
            case nil: additional = compiled.isEmpty ? any() : nil
            case .bool(let allowed)?: additional = allowed ? any() : nil
            case let s?: additional = try compile(s, path: "\(path)/additionalProperties")
            }
            return grammar.add(.object(properties: compiled, additional: additional))
        }

        mutating func reference(_ ref: JSONValue, path: String) throws(JSONSchemaError) -> Int {
            guard case .string(let target) = ref else { throw error("$ref", "'$ref' at \(path) must be a string") }
            if let node = refNodes[target] { return node }
            let resolved: JSONValue
            if target == "#" {
                resolved = root
            } else {
                let parts = target.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
                guard parts.count == 3, parts[0] == "#", parts[1] == "$defs" || parts[1] == "definitions",
                      let found = root[parts[1]]?[Self.unescape(parts[2])] else {
                    throw error("$ref", "'$ref' \(target) at \(path) does not name a schema in this document (#/$defs/NAME)")
                }
                resolved = found
            }
            // Reserve the node first: the target may refer back to itself.
            let node = grammar.add(.anyOf([]))
            refNodes[target] = node
            let body = try compile(resolved, path: target)
            grammar.set(node, .anyOf([body]))
            return node
        }

        /// A `$ref` chain that comes back to itself before any byte is written
        /// (`{"$defs": {"a": {"$ref": "#/$defs/a"}}}`) describes no value; refuse it.
        func checkNoEmptyCycles() throws(JSONSchemaError) {
            var state = [UInt8](repeating: 0, count: grammar.nodes.count)  // 0 new, 1 on the path, 2 done
            func visit(_ n: Int) -> Bool {
                if state[n] == 1 { return false }
                if state[n] == 2 { return true }
                state[n] = 1
                if case .anyOf(let alternatives) = grammar.nodes[n] {
                    for a in alternatives where !visit(a) { return false }
                }
                state[n] = 2
                return true
            }
            for n in grammar.nodes.indices where !visit(n) {
                throw error("$ref", "the schema's '$ref' chain refers to itself without describing a value")
            }
        }

        /// JSON Pointer escapes (~1 is '/', ~0 is '~').
        static func unescape(_ s: String) -> String {
            s.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
        }
    }
}
