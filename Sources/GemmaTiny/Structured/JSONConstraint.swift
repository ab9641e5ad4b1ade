/// Constrained decoding of one reply: which tokens may come next so that the reply stays a
/// prefix of a value the grammar accepts, and the grammar state as tokens are chosen.
///
/// The sampler asks ``allows(_:)`` about the token it drew first; only when that token is
/// refused does it pay for the whole mask (``maskDisallowed(_:)``) and draw again, as
/// llama.cpp's sampler does. Greedy decoding gives the best allowed token either way; with
/// temperature, drawing first and redrawing from the masked distribution gives exactly the
/// masked distribution when no top-k / top-p / min-p cut applies, and very nearly with one.
struct JSONConstraint {
    private let stepper: JSONStepper
    private let index: TokenByteIndex
    private(set) var states: [JSONParseState]
    private var allowed: [UInt64]

    init(grammar: JSONGrammar, index: TokenByteIndex) {
        stepper = JSONStepper(grammar: grammar)
        self.index = index
        states = [stepper.initialState]
        allowed = [UInt64](repeating: 0, count: (index.vocabularySize + 63) / 64)
    }

    /// The reply is a complete value and nothing may follow it.
    var isClosed: Bool { states.allSatisfy(\.isClosed) }

    /// The reply could end here (a complete value).
    var canEnd: Bool { states.contains(where: \.canEnd) }

    /// Whether `token` may come next.
    func allows(_ token: Int) -> Bool {
        guard token >= 0 && token < index.vocabularySize else { return false }
        if index.endTokens.contains(token) { return canEnd }
        let bytes = index.bytes(of: token)
        guard !bytes.isEmpty else { return false }
        return !advance(states, bytes).isEmpty
    }

    /// Moves the grammar past `token`; false (and no change) when `token` may not come next.
    @discardableResult
    mutating func accept(_ token: Int) -> Bool {
        guard token >= 0 && token < index.vocabularySize else { return false }
        if index.endTokens.contains(token) {
            guard canEnd else { return false }
            states = [JSONParseState(frames: [])]
            return true
        }
        let bytes = index.bytes(of: token)
        guard !bytes.isEmpty else { return false }
        let next = advance(states, bytes)
        guard !next.isEmpty else { return false }
        states = next
        return true
    }

    /// Sets the logit of every token that may not come next to -inf; returns how many may.
    mutating func maskDisallowed(_ logits: UnsafeMutableBufferPointer<Float>) -> Int {
        computeAllowed()
        var count = 0
        let n = min(logits.count, index.vocabularySize)
        allowed.withUnsafeBufferPointer { words in
            for w in 0..<words.count {
                let word = words[w]
                let lo = w << 6, hi = min(lo + 64, n)
                guard lo < hi else { break }
                if word == 0 {
                    for t in lo..<hi { logits[t] = -.infinity }
                } else {
                    count += word.nonzeroBitCount
                    if word != ~0 {
                        for t in lo..<hi where word & (1 << UInt64(t - lo)) == 0 { logits[t] = -.infinity }
                    }
                }
            }
        }
        for t in n..<logits.count { logits[t] = -.infinity }
        return count
    }

    /// Fills `allowed` with every token that may come next.
    mutating func computeAllowed() {
        for i in allowed.indices { allowed[i] = 0 }
        if canEnd { for t in index.endTokens { set(t) } }
        if !states.isEmpty && states.allSatisfy(\.isInStringContent) {
            // Plain string characters keep every state as it is: all those tokens at once, then
            // the others from their first special byte on.
            for i in allowed.indices { allowed[i] |= index.plainInString[i] }
            walk(index.stringBreaking, 0, index.stringBreaking.token.count, depth: 0, states)
        } else {
            walk(index.sorted, 0, index.sorted.token.count, depth: 0, states)
        }
    }

    /// Test hook: the allowed set as token ids, ascending.
    mutating func allowedTokens() -> [Int] {
        computeAllowed()
        return (0..<index.vocabularySize).filter { allowed[$0 >> 6] & (1 << UInt64($0 & 63)) != 0 }
    }

    private mutating func set(_ t: Int) { allowed[t >> 6] |= 1 << UInt64(t & 63) }

    /// Entries `lo..<hi` share their first `depth` bytes, which took the grammar to `states`.
    private mutating func walk(_ e: TokenByteIndex.Entries, _ lo: Int, _ hi: Int, depth: Int, _ states: [JSONParseState]) {
        let bytes = index.bytes, start = index.start
        func end(_ i: Int) -> Int { Int(start[Int(e.token[i]) + 1]) }
        func byte(_ i: Int) -> UInt8 { bytes[Int(e.from[i]) + depth] }
        var i = lo
        // Entries with exactly `depth` bytes sort first: those tokens are whole.
        while i < hi && end(i) - Int(e.from[i]) == depth {
            set(Int(e.token[i]))
            i += 1
        }
        while i < hi {
            let c = byte(i)
            var a = i + 1, b = hi  // the first entry past byte `c`
            while a < b {
                let m = (a + b) / 2
                if byte(m) <= c { a = m + 1 } else { b = m }
            }
            let next = advance(states, CollectionOfOne(c))
            if !next.isEmpty { walk(e, i, a, depth: depth + 1, next) }
            i = a
        }
    }

    private func advance<C: Collection>(_ states: [JSONParseState], _ bytes: C) -> [JSONParseState]
    where C.Element == UInt8 {
        var current = states
        var next: [JSONParseState] = []
        for c in bytes {
            next.removeAll(keepingCapacity: true)
            for s in current { stepper.advance(s, c, into: &next) }
            if next.count > 1 { next = Self.unique(next) }
            // A hostile schema (nested anyOf) could multiply the states at every byte: keep the
            // first ones. Dropping states only narrows what may follow; every reply stays valid.
            if next.count > Self.maxStates { next.removeLast(next.count - Self.maxStates) }
            if next.isEmpty { return [] }
            swap(&current, &next)
        }
        return current
    }

    static let maxStates = 256

    private static func unique(_ states: [JSONParseState]) -> [JSONParseState] {
        var seen = Set<JSONParseState>()
        return states.filter { seen.insert($0).inserted }
    }
}

/// What a generation needs to constrain its reply: the compiled grammar and where the model's
/// token index is kept (built on the compute thread the first time it is needed).
struct StructuredReply: Sendable {
    let grammar: JSONGrammar
    let index: TokenByteIndexCache

    func makeConstraint(tokenizer: Tokenizer) -> JSONConstraint {
        JSONConstraint(grammar: grammar, index: index.get(for: tokenizer))
    }
}
