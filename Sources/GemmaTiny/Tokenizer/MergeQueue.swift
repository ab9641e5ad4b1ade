/// A candidate merge of two adjacent symbols: their concatenation is a vocabulary piece.
struct MergeCandidate {
    var score: Float
    var left: Int32
    var right: Int32
    /// Byte length of the merged piece; a candidate whose symbols have changed since it was
    /// queued no longer adds up to this and is skipped.
    var size: Int32

    /// SentencePiece's order: higher score first, then the leftmost pair.
    @inline(__always)
    func precedes(_ other: MergeCandidate) -> Bool {
        score > other.score || (score == other.score && left < other.left)
    }
}

/// Binary max-heap of merge candidates in raw memory (fast in debug builds too).
struct MergeQueue: ~Copyable {
    private var storage: UnsafeMutablePointer<MergeCandidate>
    private var capacity: Int
    private(set) var count = 0

    init(capacity: Int) {
        self.capacity = max(capacity, 16)
        storage = .allocate(capacity: self.capacity)
    }

    deinit { storage.deallocate() }

    var isEmpty: Bool { count == 0 }

    mutating func push(_ c: MergeCandidate) {
        if count == capacity { grow() }
        var i = count
        count += 1
        while i > 0 {
            let parent = (i - 1) >> 1
            if !c.precedes(storage[parent]) { break }
            storage[i] = storage[parent]
            i = parent
        }
        storage[i] = c
    }

    mutating func pop() -> MergeCandidate {
        let top = storage[0]
        count -= 1
        if count > 0 {
            let last = storage[count]
            var i = 0
            while true {
                var child = 2 * i + 1
                if child >= count { break }
                if child + 1 < count && storage[child + 1].precedes(storage[child]) { child += 1 }
                if !storage[child].precedes(last) { break }
                storage[i] = storage[child]
                i = child
            }
            storage[i] = last
        }
        return top
    }

    private mutating func grow() {
        let bigger = UnsafeMutablePointer<MergeCandidate>.allocate(capacity: capacity * 2)
        bigger.moveInitialize(from: storage, count: count)
        storage.deallocate()
        storage = bigger
        capacity *= 2
    }
}
