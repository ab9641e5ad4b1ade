/// llama.cpp's first step of tokenization (`tokenizer_st_partition` in llama-vocab.cpp), used
/// with `TokenizerSettings.Semantics.llamaCpp`: the raw text, before any space is escaped, is cut
/// at the occurrences of a set of pieces (user-defined pieces; when parsing special tokens also
/// control and unknown pieces), which become their ids; the text between them is encoded
/// separately.
///
/// Pieces are taken longest first over the whole text: every non-overlapping occurrence of the
/// longest piece, from the left, then those of the next piece in the text that is left, and so
/// on. That is not a left-to-right longest match: with the pieces "ab" and "bcd", "abcd" is
/// "a" + "bcd", not "ab" + "cd". Pieces of equal length are taken in id order; llama.cpp takes
/// them in the order of an unstable sort, which matters only when two different pieces of the
/// same length can overlap (no Gemma vocabulary has such pieces: its user-defined and control
/// pieces are runs of one whitespace character or delimited like `<...>` and `[...]`, for which
/// longest-first and left-to-right longest matching agree).
struct LlamaCppPartition: Sendable {
    enum Segment: Equatable {
        case text(Range<Int>)  // byte range of the input
        case piece(Int)
    }

    /// The pieces in the order they are taken; `matcher` maps a piece's bytes to its index here.
    private let order: [(bytes: [UInt8], id: Int32)]
    private let matcher: PrefixMatcher

    /// `pieces`: the bytes each piece is matched as, and its id. Empty texts are ignored; of two
    /// pieces with the same text the lower id is used.
    init(_ pieces: [(bytes: [UInt8], id: Int32)]) {
        let sorted = pieces.filter { !$0.bytes.isEmpty }.sorted {
            $0.bytes.count != $1.bytes.count ? $0.bytes.count > $1.bytes.count : $0.id < $1.id
        }
        order = sorted
        matcher = PrefixMatcher(sorted.enumerated().map { (key: $0.element.bytes, value: Int32($0.offset)) })
    }

    var isEmpty: Bool { matcher.isEmpty }

    /// The segments of UTF-8 `input`, in text order; together they cover it exactly.
    func split(_ input: UnsafeBufferPointer<UInt8>) -> [Segment] {
        guard let base = input.baseAddress, input.count > 0 else { return [] }
        let n = input.count
        // Which pieces occur at all (a piece that does not cannot cut anything).
        var occurs = [Bool](repeating: false, count: order.count)
        var anyOccurs = false
        if !matcher.isEmpty {
            for i in 0..<n {
                matcher.forEachMatch(base + i, n - i) { _, index in
                    occurs[Int(index)] = true
                    anyOccurs = true
                }
            }
        }
        guard anyOccurs else { return [.text(0..<n)] }

        var free: [Range<Int>] = [0..<n]  // text not yet cut, in order
        var found: [(start: Int, id: Int)] = []
        for index in 0..<order.count where occurs[index] {
            let (bytes, id) = order[index]
            var remaining: [Range<Int>] = []
            bytes.withUnsafeBufferPointer { piece in
                let p = piece.baseAddress!, length = piece.count, first = p[0]
                for range in free {
                    var textStart = range.lowerBound
                    var j = range.lowerBound
                    while j + length <= range.upperBound {
                        if base[j] == first && equalBytes(base + j, p, length) {
                            if textStart < j { remaining.append(textStart..<j) }
                            found.append((j, Int(id)))
                            j += length
                            textStart = j
                        } else {
                            j += 1
                        }
                    }
                    if textStart < range.upperBound { remaining.append(textStart..<range.upperBound) }
                }
            }
            free = remaining
            if free.isEmpty { break }
        }

        found.sort { $0.start < $1.start }
        var segments: [Segment] = []
        segments.reserveCapacity(found.count + free.count)
        var f = 0
        for piece in found {
            while f < free.count && free[f].lowerBound < piece.start {
                segments.append(.text(free[f]))
                f += 1
            }
            segments.append(.piece(piece.id))
        }
        while f < free.count {
            segments.append(.text(free[f]))
            f += 1
        }
        return segments
    }
}

@inline(__always)
private func equalBytes(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ count: Int) -> Bool {
    var i = 0
    while i < count {
        if a[i] != b[i] { return false }
        i += 1
    }
    return true
}
