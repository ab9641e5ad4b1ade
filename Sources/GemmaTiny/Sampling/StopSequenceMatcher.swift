/// Finds stop sequences in streamed, decoded text.
///
/// Matching is on UTF-8 bytes (like llama.cpp), so a stop sequence is found even when it starts inside
/// a grapheme cluster (e.g. a combining accent). Because UTF-8 is self-synchronising, a match can only
/// start on a scalar boundary, so the emitted text is always whole unicode scalars.
/// A stop sequence counts as soon as it is complete (if two complete on the same byte, the longer one),
/// so the result doesn't depend on how the text is split into feeds.
public struct StopSequenceMatcher: Sendable {
    /// Non-empty stop sequences, as UTF-8.
    private let stops: [[UInt8]]
    private let longestStop: Int
    /// Text that could still be the start of a stop sequence.
    private var held: [UInt8] = []
    /// The stop sequence that ended generation, once one has.
    public private(set) var matchedStopSequence: String?

    public var isStopped: Bool { matchedStopSequence != nil }

    /// Empty strings are ignored (they would stop before any text).
    public init(stopSequences: [String]) {
        // Longest first: of two stops ending at the same byte, the one starting earlier wins.
        stops = stopSequences.filter { !$0.isEmpty }.map { Array($0.utf8) }.sorted { $0.count > $1.count }
        longestStop = stops.map(\.count).max() ?? 0
    }

    /// Feed newly decoded text. Returns the text safe to emit now, holding back any suffix that could
    /// be the start of a stop sequence, and whether a stop sequence was completed: the text before it
    /// is emitted, the stop sequence and everything after it are not. Once stopped, further input is ignored.
    public mutating func feed(_ text: String) -> (emit: String, stopped: Bool) {
        let (bytes, stopped) = feed(utf8: text.utf8)
        return (String(decoding: bytes, as: UTF8.self), stopped)
    }

    /// At end of generation: the held-back text (empty after a stop).
    public mutating func flush() -> String {
        String(decoding: flushUTF8(), as: UTF8.self)
    }

    /// Byte-level `feed`, for callers that stream raw token bytes. If the input splits a UTF-8
    /// sequence, so may the output; the caller reassembles it.
    public mutating func feed(utf8 text: some Sequence<UInt8>) -> (emit: [UInt8], stopped: Bool) {
        if isStopped { return ([], true) }
        let oldCount = held.count
        held.append(contentsOf: text)
        if stops.isEmpty { return (flushUTF8(), false) }

        if let (start, stop) = firstCompletedMatch(endingAfter: oldCount) {
            let emit = Array(held[..<start])
            held.removeAll()
            matchedStopSequence = String(decoding: stop, as: UTF8.self)
            return (emit, true)
        }
        // Hold back from the earliest position whose remainder is a proper prefix of some stop sequence.
        let holdFrom = earliestPartialMatch()
        let emit = Array(held[..<holdFrom])
        held.removeSubrange(..<holdFrom)
        return (emit, false)
    }

    public mutating func flushUTF8() -> [UInt8] {
        defer { held.removeAll() }
        return held
    }

    /// The stop sequence completed first (earliest end). Held bytes never contain a whole stop
    /// sequence, so only matches ending in the new bytes need checking.
    private func firstCompletedMatch(endingAfter oldCount: Int) -> (start: Int, stop: [UInt8])? {
        guard held.count > oldCount else { return nil }
        for end in (oldCount + 1)...held.count {
            for stop in stops where stop.count <= end && held[(end - stop.count)..<end].elementsEqual(stop) {
                return (end - stop.count, stop)
            }
        }
        return nil
    }

    private func earliestPartialMatch() -> Int {
        // Only the last longestStop - 1 bytes can be an incomplete stop sequence.
        let first = max(0, held.count - (longestStop - 1))
        for start in first..<held.count {
            let tail = held[start...]
            for stop in stops where stop.count > tail.count && stop.starts(with: tail) {
                return start
            }
        }
        return held.count
    }
}
