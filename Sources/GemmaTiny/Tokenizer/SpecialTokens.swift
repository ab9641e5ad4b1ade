/// Finds the text of control pieces such as `<start_of_turn>` in a prompt so they can be
/// encoded as their ids. Only CONTROL pieces written `<...>` count; plain encoding never
/// produces control ids.
struct SpecialTokenMatcher: Sendable {
    enum Segment: Equatable {
        case text(Range<Int>)  // byte range of the input
        case special(Int)
    }

    private let matcher: PrefixMatcher
    let tokens: [String: Int]

    init(_ v: TokenizerVocabulary) {
        var entries: [(key: [UInt8], value: Int32)] = []
        var tokens: [String: Int] = [:]
        for i in 0..<v.count where v.types[i] == .control {
            let p = v.pieces[i]
            guard p.utf8.count >= 3, p.utf8.first == 0x3C, p.utf8.last == 0x3E else { continue }
            entries.append((Array(p.utf8), Int32(i)))
            if tokens[p] == nil { tokens[p] = i }
        }
        matcher = PrefixMatcher(entries)
        self.tokens = tokens
    }

    /// Splits UTF-8 `input` into special tokens (longest match first) and the text between them.
    func split(_ input: UnsafeBufferPointer<UInt8>) -> [Segment] {
        guard let base = input.baseAddress, !matcher.isEmpty else {
            return input.isEmpty ? [] : [.text(0..<input.count)]
        }
        var segments: [Segment] = []
        var textStart = 0
        var i = 0
        while i < input.count {
            if base[i] == 0x3C {
                let m = matcher.longestMatch(base + i, input.count - i)
                if m.length > 0 {
                    if textStart < i { segments.append(.text(textStart..<i)) }
                    segments.append(.special(Int(m.id)))
                    i += m.length
                    textStart = i
                    continue
                }
            }
            i += 1
        }
        if textStart < input.count { segments.append(.text(textStart..<input.count)) }
        return segments
    }
}
