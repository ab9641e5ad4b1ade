import Foundation
import GemmaKernels

/// A session's keys and values, per layer. A global layer holds every position of the context;
/// a sliding-window layer holds only its window, as a ring buffer (position p in slot
/// p % capacity), so a long context costs memory in the global layers only.
///
/// Layout: one anonymous mapping (MAP_NORESERVE: pages are only taken as positions are used);
/// per layer, [capacity][kvDim] keys then [capacity][kvDim] values, f32.
///
/// What a ring still holds: positions are written in increasing order between rewinds, so after
/// writing up to `highWater` (exclusive) the slots hold positions highWater - capacity ..<
/// highWater; rewinding below the current position leaves the slots above it stale (they are
/// overwritten when refilled) but does not bring back what was overwritten. `canRewind(to:)`
/// says whether the window of the next token is still all there.
final class KVCache {
    let kvDim: Int
    let contextLength: Int
    /// Per layer: positions held (the window for a sliding layer, else the context).
    let capacities: [Int]
    /// Per layer: the window (nil for a global layer).
    let windows: [Int?]
    /// Bytes reserved.
    let byteCount: Int
    /// One past the highest position written since the last `reset`.
    private(set) var highWater = 0

    private let base: UnsafeMutablePointer<Float>
    private let offsets: [Int]

    init(variant: GemmaVariant, contextLength ctx: Int, kvDim: Int) throws(ModelError) {
        self.kvDim = kvDim
        contextLength = ctx
        windows = variant.layers.map(\.window)
        capacities = variant.layers.indices.map { variant.cacheCapacity(layer: $0, contextLength: ctx) }
        var offsets: [Int] = []
        var total = 0
        for c in capacities {
            offsets.append(total)
            let (layerFloats, o1) = c.multipliedReportingOverflow(by: 2 * kvDim)
            let (sum, o2) = total.addingReportingOverflow(layerFloats)
            guard !o1, !o2 else { throw .outOfMemory("KV cache size overflows") }
            total = sum
        }
        let (bytes, overflow) = total.multipliedReportingOverflow(by: MemoryLayout<Float>.size)
        guard !overflow else { throw .outOfMemory("KV cache size overflows") }
        self.offsets = offsets
        byteCount = max(bytes, 1)
        let p = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p, p != MAP_FAILED else {
            throw .outOfMemory("cannot reserve \(byteCount) bytes for a \(ctx)-token KV cache; try a smaller context")
        }
        base = p.assumingMemoryBound(to: Float.self)
    }

    deinit { munmap(base, byteCount) }

    func keys(layer: Int) -> UnsafeMutablePointer<Float> { base + offsets[layer] }
    func values(layer: Int) -> UnsafeMutablePointer<Float> { base + offsets[layer] + capacities[layer] * kvDim }

    func reset() { highWater = 0 }

    /// Whether every layer still holds the positions the token at `position` attends to (other
    /// than itself), i.e. whether the session can continue from there.
    func canRewind(to position: Int) -> Bool {
        for (c, w) in zip(capacities, windows) {
            guard let w else { continue }
            let oldestNeeded = max(0, position - w + 1)
            if oldestNeeded < highWater - c { return false }
        }
        return true
    }

    /// Stores the keys and values of `count` consecutive positions from `position` on (rows of
    /// kvDim floats) into layer `layer`; a ring keeps only the last `capacity` of them.
    func store(layer: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>, position: Int, count: Int) {
        let c = capacities[layer]
        let keys = keys(layer: layer), values = values(layer: layer)
        for p in max(position, position + count - c)..<(position + count) {
            let slot = p % c, row = p - position
            (keys + slot * kvDim).update(from: k + row * kvDim, count: kvDim)
            (values + slot * kvDim).update(from: v + row * kvDim, count: kvDim)
        }
    }

    /// Marks positions ..<end as written (call once per batch, after every layer stored it).
    func didWrite(upTo end: Int) { highWater = max(highWater, end) }

    /// Appends to `spans` the cached positions lo..<hi of layer `layer`, in position order (one
    /// span, or two where a ring wraps), offset by `column` floats into each row (a KV head).
    /// Returns the number of spans written.
    func spans(layer: Int, from lo: Int, to hi: Int, column: Int, into spans: UnsafeMutablePointer<gt_kv_span>) -> Int {
        guard lo < hi else { return 0 }
        let c = capacities[layer]
        precondition(hi - lo <= c, "positions \(lo)..<\(hi) do not fit layer \(layer)'s \(c) slots")
        let keys = UnsafePointer(keys(layer: layer)) + column
        let values = UnsafePointer(values(layer: layer)) + column
        let first = lo % c
        let n1 = min(hi - lo, c - first)
        spans[0] = gt_kv_span(keys: keys + first * kvDim, values: values + first * kvDim, count: n1)
        guard n1 < hi - lo else { return 1 }
        spans[1] = gt_kv_span(keys: keys, values: values, count: hi - lo - n1)
        return 2
    }
}
