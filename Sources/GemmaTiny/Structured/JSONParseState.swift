/// Where a reply is in its JSON grammar: a stack of frames, innermost last. An empty stack is a
/// complete reply. Stepping a byte gives zero states (the byte cannot come next), one, or
/// several (`anyOf` alternatives, or which optional key a `"` starts, still undecided).
struct JSONParseState: Hashable, Sendable {
    var frames: [Frame]

    struct Frame: Hashable, Sendable {
        enum Kind: UInt8, Sendable { case value, object, array, string, number, literal }
        var kind: Kind
        var phase: UInt8 = 0
        var node: Int32
        /// object: the next property that may come; array: items so far; string: bytes still
        /// expected (escape / UTF-8); number: digits in the current part; literal: bytes matched.
        var a: Int32 = 0
        /// object: the property whose key or value is being written (-1 for a free key);
        /// string: the range allowed for the next UTF-8 continuation byte (low << 8 | high).
        var b: Int32 = 0
        /// Whitespace run so far: a byte count and a newline count (`JSONStepper.whitespace`).
        var ws: UInt8 = 0
    }

    /// No more bytes may follow: the value is closed.
    var isClosed: Bool { frames.isEmpty }

    /// The reply may end here: closed, or a top-level number that could also go on.
    var canEnd: Bool {
        frames.isEmpty
            || (frames.count == 1 && frames[0].kind == .number && JSONStepper.NumberPhase.accepting(frames[0].phase))
    }

    /// Inside a string, between characters: every plain character keeps the state as it is.
    var isInStringContent: Bool {
        guard let top = frames.last else { return false }
        return top.kind == .string && top.phase == JSONStepper.StringPhase.normal
    }
}

/// The byte-level JSON grammar, directed by a compiled schema.
struct JSONStepper: Sendable {
    let grammar: JSONGrammar

    /// Nesting deeper than this is refused (about 30 levels of objects or arrays).
    static let maxFrames = 64
    /// Whitespace between tokens: at most two newlines and 31 bytes in a run (enough for any
    /// pretty-printer's indentation and for `{\n\n}`), so a model cannot fill the reply with
    /// blank lines.
    static let maxWhitespaceRun: UInt8 = 31

    enum ObjectPhase {
        static let open: UInt8 = 0, key: UInt8 = 1, colon: UInt8 = 2, member: UInt8 = 3
        static let afterMember: UInt8 = 4, expectKey: UInt8 = 5
    }
    enum ArrayPhase {
        static let open: UInt8 = 0, item: UInt8 = 1, afterItem: UInt8 = 2, expectItem: UInt8 = 3
    }
    enum StringPhase {
        static let normal: UInt8 = 0, escape: UInt8 = 1, hex: UInt8 = 2, utf8: UInt8 = 3
        /// After a `\uD8xx`-`\uDBxx` escape (a high surrogate): `\`, `u`, then the low half.
        static let lowBackslash: UInt8 = 4, lowU: UInt8 = 5, lowHex: UInt8 = 6
    }
    enum NumberPhase {
        static let minus: UInt8 = 0, zero: UInt8 = 1, int: UInt8 = 2, dot: UInt8 = 3
        static let frac: UInt8 = 4, exponent: UInt8 = 5, exponentSign: UInt8 = 6, exponentDigits: UInt8 = 7
        static func accepting(_ p: UInt8) -> Bool { p == zero || p == int || p == frac || p == exponentDigits }
        static let maxIntegerDigits: Int32 = 18, maxFractionDigits: Int32 = 16, maxExponentDigits: Int32 = 2
    }

    typealias Frame = JSONParseState.Frame

    /// A reply starts with its value, after at most one whitespace byte: enough for the token a
    /// model writes after "JSON:" (` {`), too little to spend tokens on blank lines first.
    var initialState: JSONParseState {
        JSONParseState(frames: [Frame(kind: .value, node: Int32(grammar.root), ws: Self.maxWhitespaceRun - 1)])
    }

    /// Every state `state` can move to by reading `c`, appended to `out`.
    func advance(_ state: JSONParseState, _ c: UInt8, into out: inout [JSONParseState]) {
        guard let top = state.frames.last else { return }  // closed: nothing may follow
        var base = state
        base.frames.removeLast()
        switch top.kind {
        case .value:
            if Self.isWhitespace(c) {
                if let ws = Self.whitespace(top.ws, c) { push(base, top, ws: ws, into: &out) }
            } else {
                start(base, node: Int(top.node), c, into: &out)
            }
        case .literal:
            guard case .literal(let bytes) = grammar.nodes[Int(top.node)], bytes[Int(top.a)] == c else { return }
            if Int(top.a) + 1 == bytes.count {
                complete(base, into: &out)
            } else {
                var t = top
                t.a += 1
                base.frames.append(t)
                out.append(base)
            }
        case .string: string(base, top, c, into: &out)
        case .number: number(base, top, c, into: &out)
        case .object: object(base, top, c, into: &out)
        case .array: array(base, top, c, into: &out)
        }
    }

    // MARK: Values

    /// `c` is the first byte of a value of `node`.
    private func start(_ base: JSONParseState, node: Int, _ c: UInt8, into out: inout [JSONParseState]) {
        switch grammar.nodes[node] {
        case .object:
            guard c == UInt8(ascii: "{"), base.frames.count < Self.maxFrames else { return }
            push(base, Frame(kind: .object, phase: ObjectPhase.open, node: Int32(node), b: -1), into: &out)
        case .array:
            guard c == UInt8(ascii: "["), base.frames.count < Self.maxFrames else { return }
            push(base, Frame(kind: .array, phase: ArrayPhase.open, node: Int32(node)), into: &out)
        case .string:
            guard c == UInt8(ascii: "\"") else { return }
            push(base, Frame(kind: .string, phase: StringPhase.normal, node: Int32(node)), into: &out)
        case .number, .integer:
            switch c {
            case UInt8(ascii: "-"): push(base, Frame(kind: .number, phase: NumberPhase.minus, node: Int32(node)), into: &out)
            case UInt8(ascii: "0"): push(base, Frame(kind: .number, phase: NumberPhase.zero, node: Int32(node)), into: &out)
            case UInt8(ascii: "1")...UInt8(ascii: "9"):
                push(base, Frame(kind: .number, phase: NumberPhase.int, node: Int32(node), a: 1), into: &out)
            default: return
            }
        case .literal(let bytes):
            guard bytes.first == c else { return }
            if bytes.count == 1 {
                complete(base, into: &out)
            } else {
                push(base, Frame(kind: .literal, node: Int32(node), a: 1), into: &out)
            }
        case .anyOf(let alternatives):
            for alternative in alternatives { start(base, node: alternative, c, into: &out) }
        }
    }

    /// The innermost frame of `base`'s child just ended: move its parent on.
    private func complete(_ base: JSONParseState, into out: inout [JSONParseState]) {
        var state = base
        guard var parent = state.frames.popLast() else {
            out.append(state)  // the whole reply is closed
            return
        }
        parent.ws = 0
        switch parent.kind {
        case .object:
            if parent.phase == ObjectPhase.key {
                parent.phase = ObjectPhase.colon
            } else {
                guard case .object(let properties, _) = grammar.nodes[Int(parent.node)] else { return }
                parent.phase = ObjectPhase.afterMember
                // After a free key, no listed property may follow.
                parent.a = parent.b >= 0 ? parent.b + 1 : Int32(properties.count)
            }
        case .array:
            parent.phase = ArrayPhase.afterItem
            parent.a += 1
        default:
            return  // only objects and arrays hold other values
        }
        state.frames.append(parent)
        out.append(state)
    }

    private func push(_ base: JSONParseState, _ frame: Frame, into out: inout [JSONParseState]) {
        var s = base
        s.frames.append(frame)
        out.append(s)
    }

    private func push(_ base: JSONParseState, _ frame: Frame, ws: UInt8, into out: inout [JSONParseState]) {
        var f = frame
        f.ws = ws
        push(base, f, into: &out)
    }

    // MARK: Objects and arrays

    private func object(_ base: JSONParseState, _ top: Frame, _ c: UInt8, into out: inout [JSONParseState]) {
        guard case .object(let properties, let additional) = grammar.nodes[Int(top.node)] else { return }
        let next = Int(top.a)
        // No required property is left from `next` on.
        let canClose = !properties[next...].contains(where: \.required)
        if Self.isWhitespace(c), top.phase != ObjectPhase.key, top.phase != ObjectPhase.member {
            if let ws = Self.whitespace(top.ws, c) { push(base, top, ws: ws, into: &out) }
            return
        }
        switch top.phase {
        case ObjectPhase.open, ObjectPhase.expectKey:
            if c == UInt8(ascii: "}") {
                if top.phase == ObjectPhase.open && canClose { complete(base, into: &out) }
                return
            }
            guard c == UInt8(ascii: "\"") else { return }
            // Which key this is stays open until its bytes decide: any listed property up to the
            // first required one, or a free key once no required property is left.
            for j in next..<properties.count {
                var o = top
                o.phase = ObjectPhase.key
                o.b = Int32(j)
                o.ws = 0
                var s = base
                s.frames.append(o)
                s.frames.append(Frame(kind: .literal, node: Int32(properties[j].keyNode), a: 1))
                out.append(s)
                if properties[j].required { break }
            }
            if additional != nil && canClose {
                var o = top
                o.phase = ObjectPhase.key
                o.b = -1
                o.ws = 0
                var s = base
                s.frames.append(o)
                s.frames.append(Frame(kind: .string, phase: StringPhase.normal, node: -1))
                out.append(s)
            }
        case ObjectPhase.colon:
            guard c == UInt8(ascii: ":"), let valueNode = top.b >= 0 ? properties[Int(top.b)].valueNode : additional else {
                return
            }
            var o = top
            o.phase = ObjectPhase.member
            o.ws = 0
            var s = base
            s.frames.append(o)
            s.frames.append(Frame(kind: .value, node: Int32(valueNode)))
            out.append(s)
        case ObjectPhase.afterMember:
            if c == UInt8(ascii: "}") {
                if canClose { complete(base, into: &out) }
            } else if c == UInt8(ascii: ",") {
                let moreKeys = next < properties.count || (additional != nil && canClose)
                if moreKeys {
                    var o = top
                    o.phase = ObjectPhase.expectKey
                    o.ws = 0
                    push(base, o, into: &out)
                }
            }
        default:
            return  // key and member phases have a child frame on top of them
        }
    }

    private func array(_ base: JSONParseState, _ top: Frame, _ c: UInt8, into out: inout [JSONParseState]) {
        guard case .array(let items, let minItems, let maxItems) = grammar.nodes[Int(top.node)] else { return }
        if Self.isWhitespace(c), top.phase != ArrayPhase.item {
            if let ws = Self.whitespace(top.ws, c) { push(base, top, ws: ws, into: &out) }
            return
        }
        switch top.phase {
        case ArrayPhase.open, ArrayPhase.expectItem:
            if c == UInt8(ascii: "]") {
                if top.phase == ArrayPhase.open && minItems == 0 { complete(base, into: &out) }
                return
            }
            guard Int(top.a) < maxItems else { return }
            var a = top
            a.phase = ArrayPhase.item
            a.ws = 0
            var s = base
            s.frames.append(a)
            start(s, node: items, c, into: &out)
        case ArrayPhase.afterItem:
            if c == UInt8(ascii: "]") {
                if Int(top.a) >= minItems { complete(base, into: &out) }
            } else if c == UInt8(ascii: ","), Int(top.a) < maxItems {
                var a = top
                a.phase = ArrayPhase.expectItem
                a.ws = 0
                push(base, a, into: &out)
            }
        default:
            return
        }
    }

    // MARK: Strings and numbers

    private func string(_ base: JSONParseState, _ top: Frame, _ c: UInt8, into out: inout [JSONParseState]) {
        var t = top
        switch top.phase {
        case StringPhase.normal:
            switch c {
            case UInt8(ascii: "\""): complete(base, into: &out); return
            case UInt8(ascii: "\\"): t.phase = StringPhase.escape
            case 0..<0x20: return  // control characters must be escaped
            case 0x20..<0x80: break
            // UTF-8 lead bytes, with the range of the byte after them (no overlongs, surrogates
            // or code points past U+10FFFF).
            case 0xC2...0xDF: t.phase = StringPhase.utf8; t.a = 1; t.b = 0x80BF
            case 0xE0: t.phase = StringPhase.utf8; t.a = 2; t.b = 0xA0BF
            case 0xED: t.phase = StringPhase.utf8; t.a = 2; t.b = 0x809F
            case 0xE1...0xEF: t.phase = StringPhase.utf8; t.a = 2; t.b = 0x80BF
            case 0xF0: t.phase = StringPhase.utf8; t.a = 3; t.b = 0x90BF
            case 0xF1...0xF3: t.phase = StringPhase.utf8; t.a = 3; t.b = 0x80BF
            case 0xF4: t.phase = StringPhase.utf8; t.a = 3; t.b = 0x808F
            default: return
            }
        case StringPhase.escape:
            switch c {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                 UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                t.phase = StringPhase.normal
            case UInt8(ascii: "u"): t.phase = StringPhase.hex; t.a = 4
            default: return
            }
        case StringPhase.hex:
            // A \u escape may not be half of a surrogate pair on its own (strict parsers, Swift's
            // JSONDecoder among them, refuse one): D800-DBFF must be followed by \uDC00-DFFF, and
            // DC00-DFFF may not come first. `b` is 1 after a leading D, 2 for a high surrogate.
            guard Self.isHexDigit(c) else { return }
            let position = 4 - t.a
            if position == 0 {
                t.b = c == UInt8(ascii: "d") || c == UInt8(ascii: "D") ? 1 : 0
            } else if position == 1 && t.b == 1 {
                switch Self.hexValue(c) {
                case 0..<8: t.b = 0
                case 8..<12: t.b = 2
                default: return  // a low surrogate on its own
                }
            }
            t.a -= 1
            if t.a == 0 {
                t.phase = t.b == 2 ? StringPhase.lowBackslash : StringPhase.normal
                t.b = 0
            }
        case StringPhase.lowBackslash:
            guard c == UInt8(ascii: "\\") else { return }
            t.phase = StringPhase.lowU
        case StringPhase.lowU:
            guard c == UInt8(ascii: "u") else { return }
            t.phase = StringPhase.lowHex
            t.a = 4
        case StringPhase.lowHex:
            guard Self.isHexDigit(c) else { return }
            let position = 4 - t.a
            if position == 0 && c != UInt8(ascii: "d") && c != UInt8(ascii: "D") { return }
            if position == 1 && !(12..<16).contains(Self.hexValue(c)) { return }
            t.a -= 1
            if t.a == 0 { t.phase = StringPhase.normal }
        default:  // UTF-8 continuation
            guard c >= UInt8(truncatingIfNeeded: t.b >> 8), c <= UInt8(truncatingIfNeeded: t.b & 0xFF) else { return }
            t.a -= 1
            t.b = 0x80BF
            if t.a == 0 { t.phase = StringPhase.normal }
        }
        push(base, t, into: &out)
    }

    private func number(_ base: JSONParseState, _ top: Frame, _ c: UInt8, into out: inout [JSONParseState]) {
        let integerOnly = grammar.nodes[Int(top.node)] == .integer
        let isDigit = c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")
        var t = top
        func go(_ phase: UInt8, digits: Int32) {
            t.phase = phase
            t.a = digits
            push(base, t, into: &out)
        }
        switch top.phase {
        case NumberPhase.minus:
            if c == UInt8(ascii: "0") { go(NumberPhase.zero, digits: 0) } else if isDigit { go(NumberPhase.int, digits: 1) }
            return
        case NumberPhase.dot:
            if isDigit { go(NumberPhase.frac, digits: 1) }
            return
        case NumberPhase.exponent:
            if c == UInt8(ascii: "+") || c == UInt8(ascii: "-") { go(NumberPhase.exponentSign, digits: 0) } else if isDigit {
                go(NumberPhase.exponentDigits, digits: 1)
            }
            return
        case NumberPhase.exponentSign:
            if isDigit { go(NumberPhase.exponentDigits, digits: 1) }
            return
        default:
            break
        }
        // An accepting phase: more digits, a fraction or exponent, or the number ends and `c`
        // belongs to what encloses it.
        if isDigit {
            switch top.phase {
            case NumberPhase.int where top.a < NumberPhase.maxIntegerDigits: go(NumberPhase.int, digits: top.a + 1)
            case NumberPhase.frac where top.a < NumberPhase.maxFractionDigits: go(NumberPhase.frac, digits: top.a + 1)
            case NumberPhase.exponentDigits where top.a < NumberPhase.maxExponentDigits:
                go(NumberPhase.exponentDigits, digits: top.a + 1)
            default: break  // a leading zero, or too many digits
            }
            return
        }
        if !integerOnly && c == UInt8(ascii: "."), top.phase == NumberPhase.zero || top.phase == NumberPhase.int {
            go(NumberPhase.dot, digits: 0)
            return
        }
        if !integerOnly && (c == UInt8(ascii: "e") || c == UInt8(ascii: "E")), top.phase != NumberPhase.exponentDigits {
            go(NumberPhase.exponent, digits: 0)
            return
        }
        var ended: [JSONParseState] = []
        complete(base, into: &ended)
        for s in ended { advance(s, c, into: &out) }
    }

    // MARK: Bytes

    static func isWhitespace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x0A || c == 0x09 }

    static func hexValue(_ c: UInt8) -> Int {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(c - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return Int(c - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return Int(c - UInt8(ascii: "A")) + 10
        default: return -1
        }
    }

    static func isHexDigit(_ c: UInt8) -> Bool { hexValue(c) >= 0 }

    /// The whitespace run after one more byte `c`, nil when the run may not grow. A run is a
    /// byte count (low 5 bits) and a newline count (bits 6-7).
    static func whitespace(_ ws: UInt8, _ c: UInt8) -> UInt8? {
        let count = ws & 0x1F, newlines = ws >> 6
        guard count < maxWhitespaceRun else { return nil }
        if c == 0x0A {
            guard newlines < 2 else { return nil }
            return (count + 1) | (newlines + 1) << 6
        }
        return (count + 1) | newlines << 6
    }
}
