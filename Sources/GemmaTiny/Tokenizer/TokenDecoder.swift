/// The decoding state machine shared by `Tokenizer.decode` and `StreamingDecoder`.
struct DecoderState: Sendable {
    private var pendingBytes: [UInt8] = []
    /// SentencePiece's is_bos_ws / bos_ws_seen: whether a leading ▁ may still be dropped.
    private var atStart = true
    private var droppedLeadingSpace = false
    private var emittedAny = false

    /// Appends the text of `id` to `out`. With `streaming`, byte pieces are decoded as soon as
    /// they form complete characters; otherwise they wait for the end of their run.
    mutating func append(_ id: Int, _ table: DecodeTable, streaming: Bool, into out: inout [UInt8]) {
        guard id >= 0 && id < table.kinds.count else { return }  // beyond the vocabulary: nothing
        let kind = table.kinds[id]
        if kind == .byte {
            pendingBytes.append(table.byteValues[id])
            if streaming { drainBytes(final: false, into: &out) }
            return
        }
        drainBytes(final: true, into: &out)
        if droppedLeadingSpace || emittedAny { atStart = false }
        droppedLeadingSpace = false
        switch kind {
        case .control, .byte:
            break
        case .unknown:
            emit(DecodeTable.unknownSurface[...], into: &out)
        case .text:
            var s = table.surfaceStart[id]
            if atStart && table.stripLeadingSpace && table.startsWithSpaceSymbol[id] {
                s += 1
                droppedLeadingSpace = !table.removeExtraWhitespaces
            }
            emit(table.surfaceBytes[s..<table.surfaceStart[id + 1]], into: &out)
        }
    }

    /// Flushes bytes still waiting for the rest of a character (they become U+FFFD).
    mutating func finish(into out: inout [UInt8]) {
        drainBytes(final: true, into: &out)
    }

    private mutating func drainBytes(final: Bool, into out: inout [UInt8]) {
        guard !pendingBytes.isEmpty else { return }
        let before = out.count
        let used = SentencePieceUTF8.decodeRun(pendingBytes, final: final, into: &out)
        pendingBytes.removeFirst(used)
        if out.count > before { emittedAny = true }
    }

    private mutating func emit(_ bytes: ArraySlice<UInt8>, into out: inout [UInt8]) {
        out.append(contentsOf: bytes)
        if !bytes.isEmpty { emittedAny = true }
    }
}

/// Decodes ids one at a time for display while generating. `append` returns the text completed
/// by that id; bytes of an unfinished UTF-8 character are held back until it completes (or
/// until a non-byte piece or `finish()` shows it never will, when it becomes U+FFFD). The
/// concatenation of everything returned equals `Tokenizer.decode` of all the ids.
public struct StreamingDecoder: Sendable {
    private let table: DecodeTable
    private var state = DecoderState()

    init(table: DecodeTable) {
        self.table = table
    }

    public mutating func append(_ id: Int) -> String {
        var out: [UInt8] = []
        state.append(id, table, streaming: true, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The text still held back at the end of the sequence.
    public mutating func finish() -> String {
        var out: [UInt8] = []
        state.finish(into: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
