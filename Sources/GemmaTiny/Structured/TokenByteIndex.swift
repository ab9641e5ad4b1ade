import Foundation

/// Every token's bytes, arranged for finding the tokens a grammar allows without trying each
/// of a 262k vocabulary: built once per model (``GemmaEngine`` keeps it) and shared.
///
/// - `sorted`: text and byte tokens ordered by their bytes. Tokens that share a prefix are
///   neighbours, so the array is a prefix tree without nodes: a walk steps the grammar once per
///   distinct prefix and skips every token under a byte the grammar refuses (a binary search).
/// - `plainInString`: tokens made only of characters that leave a JSON string as it is (no
///   quote, backslash or control character; whole UTF-8 characters). Inside a string they are
///   all allowed at once, and only the others (`stringBreaking`, keyed by their bytes from the
///   first special one on) are walked.
final class TokenByteIndex: Sendable {
    let vocabularySize: Int
    /// Bytes of token `t`: `bytes[start[t]..<start[t + 1]]` (empty for control and unknown).
    let bytes: [UInt8]
    let start: [Int32]
    let sorted: Entries
    let plainInString: [UInt64]
    let stringBreaking: Entries
    /// Tokens that end a reply: `<eos>`, and `<end_of_turn>` when the vocabulary has it.
    let endTokens: [Int]

    /// Tokens and, for each, where its bytes start being compared (an offset into `bytes`).
    struct Entries: Sendable {
        var token: [Int32] = []
        var from: [Int32] = []
    }

    init(tokenizer: Tokenizer) {
        let table = tokenizer.decodeTable
        let n = table.kinds.count
        vocabularySize = n
        var bytes: [UInt8] = []
        bytes.reserveCapacity(table.surfaceBytes.count + 256)
        var start: [Int32] = [0]
        start.reserveCapacity(n + 1)
        for t in 0..<n {
            switch table.kinds[t] {
            case .text: bytes.append(contentsOf: table.surfaceBytes[table.surfaceStart[t]..<table.surfaceStart[t + 1]])
            case .byte: bytes.append(table.byteValues[t])
            case .control, .unknown: break
            }
            start.append(Int32(bytes.count))
        }
        var plain = [UInt64](repeating: 0, count: (n + 63) / 64)
        var all = Entries(), breaking = Entries()
        for t in 0..<n where start[t + 1] > start[t] {
            let s = Int(start[t]), e = Int(start[t + 1])
            all.token.append(Int32(t))
            all.from.append(Int32(s))
            let whole = table.kinds[t] == .text && String(validating: bytes[s..<e], as: UTF8.self) != nil
            let special = whole ? (s..<e).first { Self.breaksString(bytes[$0]) } : s
            if let special {
                breaking.token.append(Int32(t))
                breaking.from.append(Int32(special))
            } else {
                plain[t >> 6] |= 1 << UInt64(t & 63)
            }
        }
        bytes.withUnsafeBufferPointer { buffer in
            start.withUnsafeBufferPointer { starts in
                Self.sort(&all, bytes: buffer, starts: starts)
                Self.sort(&breaking, bytes: buffer, starts: starts)
            }
        }
        self.bytes = bytes
        self.start = start
        sorted = all
        stringBreaking = breaking
        plainInString = plain
        endTokens = tokenizer.endTokens.filter { $0 < n }
    }

    /// A quote, a backslash or a control character: a byte that changes a JSON string's state.
    static func breaksString(_ c: UInt8) -> Bool { c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") || c < 0x20 }

    func bytes(of token: Int) -> ArraySlice<UInt8> { bytes[Int(start[token])..<Int(start[token + 1])] }

    /// Orders entries by their bytes (from `from` to the token's end); ties by token id.
    private static func sort(_ entries: inout Entries, bytes: UnsafeBufferPointer<UInt8>, starts: UnsafeBufferPointer<Int32>) {
        guard let base = bytes.baseAddress else { return }
        var order = Array(entries.token.indices)
        let token = entries.token, from = entries.from
        order.sort { i, j in
            let a = Int(from[i]), b = Int(from[j])
            let la = Int(starts[Int(token[i]) + 1]) - a, lb = Int(starts[Int(token[j]) + 1]) - b
            let c = memcmp(base + a, base + b, min(la, lb))
            if c != 0 { return c < 0 }
            if la != lb { return la < lb }
            return token[i] < token[j]
        }
        entries.token = order.map { token[$0] }
        entries.from = order.map { from[$0] }
    }
}
