/// SentencePiece's normalizer for the "identity" rule: no character mapping, only the
/// whitespace options of NormalizerSpec (normalizer.cc, Normalizer::Normalize).
struct TextNormalizer: Sendable {
    let addDummyPrefix: Bool
    let removeExtraWhitespaces: Bool
    let escapeWhitespaces: Bool
    /// User-defined pieces are copied whole (SentencePiece matches them on the raw input), which
    /// only matters for how remove_extra_whitespaces treats spaces inside them.
    let userDefined: PrefixMatcher

    static let spaceSymbol: [UInt8] = [0xE2, 0x96, 0x81]  // U+2581 ▁

    /// The normalized form of UTF-8 `input` (empty when there is nothing to encode).
    func normalize(_ input: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        guard let base = input.baseAddress, input.count > 0 else { return [] }
        return normalize(base, input.count)
    }

    private func normalize(_ input: UnsafePointer<UInt8>, _ count: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count * 3 + 3)
        var pos = 0
        if removeExtraWhitespaces {
            // Heading spaces are dropped.
            while pos < count, unitLength(input + pos, count - pos) == 1, input[pos] == 0x20 { pos += 1 }
            if pos == count { return [] }
        }
        if addDummyPrefix { appendSpace(&out) }
        if !removeExtraWhitespaces {
            // Every space is escaped; unit boundaries do not matter.
            for i in 0..<count {
                if input[i] == 0x20 { appendSpace(&out) } else { out.append(input[i]) }
            }
            return out
        }
        var isPrevSpace = true
        while pos < count {
            let length = unitLength(input + pos, count - pos)
            var start = pos
            let end = pos + length
            // A unit that follows a space loses its own leading spaces (collapses runs).
            while isPrevSpace && start < end && input[start] == 0x20 { start += 1 }
            if start < end {
                for i in start..<end {
                    if input[i] == 0x20 { appendSpace(&out) } else { out.append(input[i]) }
                }
                isPrevSpace = input[end - 1] == 0x20
            }
            pos = end
        }
        // Trailing spaces are dropped.
        let space = escapeWhitespaces ? Self.spaceSymbol : [0x20]
        while out.count >= space.count && Array(out[(out.count - space.count)...]) == space {
            out.removeLast(space.count)
        }
        return out
    }

    /// One normalization unit: a whole user-defined piece, or one UTF-8 character.
    private func unitLength(_ p: UnsafePointer<UInt8>, _ remaining: Int) -> Int {
        let match = userDefined.longestMatch(p, remaining).length
        return match > 0 ? match : min(remaining, utf8Length(leadByte: p[0]))
    }

    private func appendSpace(_ out: inout [UInt8]) {
        if escapeWhitespaces { out.append(contentsOf: Self.spaceSymbol) } else { out.append(0x20) }
    }
}

/// Length of a UTF-8 character from its first byte, as SentencePiece's OneCharLen computes it
/// (continuation and invalid lead bytes count as 1).
@inline(__always)
func utf8Length(leadByte b: UInt8) -> Int {
    switch b >> 4 {
    case 0xC, 0xD: return 2
    case 0xE: return 3
    case 0xF: return 4
    default: return 1
    }
}
