/// The UTF-8 bytes of every piece, back to back, so lookups compare raw memory and no piece
/// needs an Array or String of its own. Raw pointers because their access is inlined even in
/// debug builds.
final class PieceStore: @unchecked Sendable {  // immutable after init
    let count: Int
    private let bytes: UnsafeMutablePointer<UInt8>
    private let start: UnsafeMutablePointer<Int>  // count + 1 offsets

    init(_ pieces: [String]) {
        count = pieces.count
        var total = 0
        for p in pieces { total += p.utf8.count }
        bytes = .allocate(capacity: max(total, 1))
        start = .allocate(capacity: count + 1)
        var offset = 0
        for (i, p) in pieces.enumerated() {
            start[i] = offset
            var p = p
            let destination = bytes + offset
            let n = p.withUTF8 { utf8 in
                if let src = utf8.baseAddress { destination.initialize(from: src, count: utf8.count) }
                return utf8.count
            }
            offset += n
        }
        start[count] = offset
    }

    deinit {
        bytes.deallocate()
        start.deallocate()
    }

    @inline(__always) func base(_ id: Int) -> UnsafePointer<UInt8> { UnsafePointer(bytes + start[id]) }
    @inline(__always) func length(_ id: Int) -> Int { start[id + 1] - start[id] }
    func bytes(_ id: Int) -> UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base(id), count: length(id)) }
}

/// An immutable hash map from piece bytes to ids for a subset of the pieces, probed with a
/// pointer and a length so the encoder looks up slices of its buffer without copying them.
final class PieceTable: @unchecked Sendable {  // immutable after init
    private let store: PieceStore
    /// Open addressing: a piece id, or -1 for an empty slot.
    private let slots: UnsafeMutablePointer<Int32>
    private let mask: Int

    /// Indexes the pieces `ids` of `store`. `duplicate` is set to the first id whose text is
    /// already in the table (that id is left out).
    init(_ store: PieceStore, ids: [Int32], duplicate: inout Int32?) {
        self.store = store
        var capacity = 16
        while capacity < ids.count * 2 { capacity <<= 1 }
        mask = capacity - 1
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: -1, count: capacity)
        for id in ids {
            let p = store.base(Int(id)), n = store.length(Int(id))
            if lookup(p, n) >= 0 {
                if duplicate == nil { duplicate = id }
                continue
            }
            var slot = Self.hash(p, n) & mask
            while slots[slot] >= 0 { slot = (slot + 1) & mask }
            slots[slot] = id
        }
    }

    deinit { slots.deallocate() }

    /// The id of the piece spelled by the `length` bytes at `p`, or -1.
    func lookup(_ p: UnsafePointer<UInt8>, _ length: Int) -> Int32 {
        var slot = Self.hash(p, length) & mask
        while true {
            let id = slots[slot]
            if id < 0 { return -1 }
            if store.length(Int(id)) == length {
                let key = store.base(Int(id))
                var i = 0
                while i < length && key[i] == p[i] { i += 1 }
                if i == length { return id }
            }
            slot = (slot + 1) & mask
        }
    }

    /// FNV-1a, 64-bit.
    private static func hash(_ p: UnsafePointer<UInt8>, _ length: Int) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        var i = 0
        while i < length {
            h = (h ^ UInt64(p[i])) &* 0x0000_0100_0000_01b3
            i += 1
        }
        return Int(truncatingIfNeeded: h ^ (h >> 32))
    }
}
