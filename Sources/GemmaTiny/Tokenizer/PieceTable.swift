/// An immutable hash map from byte strings to ids that can be probed with a pointer and a
/// length, so the encoder looks up slices of its buffer without building a String or Array.
/// Storage is raw memory because unsafe pointer access is inlined even in debug builds.
final class PieceTable: @unchecked Sendable {  // immutable after init
    private let keyBytes: UnsafeMutablePointer<UInt8>
    private let keyStart: UnsafeMutablePointer<Int32>
    private let keyLength: UnsafeMutablePointer<Int32>
    private let values: UnsafeMutablePointer<Int32>
    /// Open addressing: index into the key arrays, or -1 for an empty slot.
    private let slots: UnsafeMutablePointer<Int32>
    private let mask: Int
    let count: Int

    /// Builds the table. Returns the first key that appears twice, if any (the first one wins).
    init(_ entries: [(key: [UInt8], value: Int32)], duplicate: inout [UInt8]?) {
        count = entries.count
        let totalBytes = entries.reduce(0) { $0 + $1.key.count }
        keyBytes = .allocate(capacity: max(totalBytes, 1))
        keyStart = .allocate(capacity: max(count, 1))
        keyLength = .allocate(capacity: max(count, 1))
        values = .allocate(capacity: max(count, 1))
        var capacity = 16
        while capacity < count * 2 { capacity <<= 1 }
        mask = capacity - 1
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: -1, count: capacity)

        var offset = 0
        var stored = 0
        for (key, value) in entries {
            key.withUnsafeBufferPointer { k in
                guard let base = k.baseAddress else { return }  // empty keys are rejected by the caller
                if lookup(base, k.count) >= 0 {
                    if duplicate == nil { duplicate = key }
                    return
                }
                (keyBytes + offset).initialize(from: base, count: k.count)
                keyStart[stored] = Int32(offset)
                keyLength[stored] = Int32(k.count)
                values[stored] = value
                var slot = Self.hash(base, k.count) & mask
                while slots[slot] >= 0 { slot = (slot + 1) & mask }
                slots[slot] = Int32(stored)
                offset += k.count
                stored += 1
            }
        }
    }

    deinit {
        keyBytes.deallocate()
        keyStart.deallocate()
        keyLength.deallocate()
        values.deallocate()
        slots.deallocate()
    }

    /// The id stored for the `length` bytes at `p`, or -1.
    func lookup(_ p: UnsafePointer<UInt8>, _ length: Int) -> Int32 {
        var slot = Self.hash(p, length) & mask
        while true {
            let entry = Int(slots[slot])
            if entry < 0 { return -1 }
            if Int(keyLength[entry]) == length {
                let key = keyBytes + Int(keyStart[entry])
                var i = 0
                while i < length && key[i] == p[i] { i += 1 }
                if i == length { return values[entry] }
            }
            slot = (slot + 1) & mask
        }
    }

    func lookup(_ bytes: [UInt8]) -> Int32 {
        bytes.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress else { return -1 }
            return lookup(base, b.count)
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
