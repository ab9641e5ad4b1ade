/// What a constrained reply must be, as a graph of nodes: a JSON Schema compiled by
/// ``JSONSchemaCompiler`` (or the fixed grammar of `json_object`). Nodes refer to each other by
/// index, so recursive schemas (`$ref` to an enclosing definition) are plain cycles.
struct JSONGrammar: Sendable {
    enum Node: Sendable, Equatable {
        /// An object. `properties` are generated in this order, each optional one may be left
        /// out; `additional` (a node) allows further keys of any name after them.
        case object(properties: [Property], additional: Int?)
        case array(items: Int, minItems: Int, maxItems: Int)
        case string
        case number
        case integer
        /// Exactly these bytes: `true`, `false`, `null`, and `const` / `enum` values.
        case literal([UInt8])
        case anyOf([Int])
    }

    struct Property: Sendable, Equatable {
        /// The key as it appears in the reply, quotes included (a `literal` node).
        var keyNode: Int
        var valueNode: Int
        var required: Bool
    }

    private(set) var nodes: [Node] = []
    var root = 0

    mutating func add(_ node: Node) -> Int {
        nodes.append(node)
        return nodes.count - 1
    }

    mutating func set(_ index: Int, _ node: Node) { nodes[index] = node }

    /// Any JSON value; objects with any keys.
    mutating func addAnyValue() -> Int {
        let any = add(.anyOf([]))
        let object = add(.object(properties: [], additional: any))
        let array = add(.array(items: any, minItems: 0, maxItems: .max))
        let string = add(.string), number = add(.number)
        let t = add(.literal(Array("true".utf8))), f = add(.literal(Array("false".utf8)))
        let null = add(.literal(Array("null".utf8)))
        set(any, .anyOf([object, array, string, number, t, f, null]))
        return any
    }

    /// `{"type": "json_object"}`: one object, any keys, any values.
    static var jsonObject: JSONGrammar {
        var g = JSONGrammar()
        let any = g.addAnyValue()
        g.root = g.add(.object(properties: [], additional: any))
        return g
    }
}
