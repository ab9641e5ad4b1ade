import Foundation
import GemmaKernels

/// A session's keys and values, per layer. A global layer holds every position of the context;
/// a sliding-window layer holds only its window, as a ring buffer (position p in slot
/// p % capacity), so a long context costs memory in the global layers only.
///
/// Layout: one anonymous mapping (MAP_NORESERVE: pages are only taken as positions are used);
/// per layer, [capacity][kvDim] keys then [capacity][kvDim] values, f32 or f16 (`KVCacheType`).
/// An f16 cache is written with halves the session already rounded (`gt_f16_store`), so the
/// batch's own keys, attended before they are stored, are the same values later tokens read.
///
/// What a ring still holds: positions are written in increasing order between rewinds, so after
/// writing up to `highWater` (exclusive) the slots hold positions highWater - capacity ..<
/// highWater; rewinding below the current position leaves the slots above it stale (they are
/// overwritten when refilled) but does not bring back what was overwritten. `canRewind(to:)`
/// says whether the window of the next token is still all there.
final class KVCache {
    let kvDim: Int
    let contextLength: Int
    let type: KVCacheType
    /// Per layer: positions held (the window for a sliding layer, else the context).
    let capacities: [Int]
    /// Per layer: the window (nil for a global layer).
    let windows: [Int?]
    /// Bytes reserved.
    let byteCount: Int
    /// One past the highest position written since the last `reset`.
    private(set) var highWater = 0

    private let base: UnsafeMutableRawPointer
    /// Per layer: where its keys start, in elements.
    private let offsets: [Int]

    init(variant: GemmaVariant, contextLength ctx: Int, kvDim: Int, type: KVCacheType = .f32) throws(ModelError) {
        self.kvDim = kvDim
        self.type = type
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
        let (bytes, overflow) = total.multipliedReportingOverflow(by: type.bytesPerElement)
        guard !overflow else { throw .outOfMemory("KV cache size overflows") }
        self.offsets = offsets
        byteCount = max(bytes, 1)
        let p = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p, p != MAP_FAILED else {
            throw .outOfMemory("cannot reserve \(byteCount) bytes for a \(ctx)-token KV cache; try a smaller context")
        }
        base = p
    }

    deinit { munmap(base, byteCount) }

    /// Layer `layer`'s keys and values of an f32 cache.
    func keys(layer: Int) -> UnsafeMutablePointer<Float> {
        precondition(type == .f32)
        return base.assumingMemoryBound(to: Float.self) + offsets[layer]
    }
    func values(layer: Int) -> UnsafeMutablePointer<Float> { keys(layer: layer) + capacities[layer] * kvDim }

    /// Layer `layer`'s keys and values of an f16 cache (IEEE halves).
    func keysF16(layer: Int) -> UnsafeMutablePointer<UInt16> {
        precondition(type == .f16)
        return base.assumingMemoryBound(to: UInt16.self) + offsets[layer]
    }
    func valuesF16(layer: Int) -> UnsafeMutablePointer<UInt16> { keysF16(layer: layer) + capacities[layer] * kvDim }

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
    /// kvDim floats) into layer `layer` of an f32 cache; a ring keeps only the last `capacity` of them.
    func store(layer: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>, position: Int, count: Int) {
        copyRows(into: keys(layer: layer), values(layer: layer), layer: layer, keys: k, values: v, position: position, count: count)
    }

    /// `store` for an f16 cache: the rows are halves already (`gt_f16_store`), copied as they are.
    func store(layer: Int, keys k: UnsafePointer<UInt16>, values v: UnsafePointer<UInt16>, position: Int, count: Int) {
        copyRows(into: keysF16(layer: layer), valuesF16(layer: layer), layer: layer, keys: k, values: v, position: position, count: count)
    }

    private func copyRows<Element>(into keys: UnsafeMutablePointer<Element>, _ values: UnsafeMutablePointer<Element>, layer: Int,
                                   keys k: UnsafePointer<Element>, values v: UnsafePointer<Element>, position: Int, count: Int) {
        let c = capacities[layer]
        for p in max(position, position + count - c)..<(position + count) {
            let slot = p % c, row = p - position
            (keys + slot * kvDim).update(from: k + row * kvDim, count: kvDim)
            (values + slot * kvDim).update(from: v + row * kvDim, count: kvDim)
        }
    }

    /// Marks positions ..<end as written (call once per batch, after every layer stored it).
    func didWrite(upTo end: Int) { highWater = max(highWater, end) }

    /// Writes to `runs` the cached positions lo..<hi of layer `layer` of an f32 cache, in position
    /// order (one run, or two where a ring wraps), offset by `column` floats into each row (a KV
    /// head), as `gt_attention_rows` reads them. Returns the number of runs written.
    func runs(layer: Int, from lo: Int, to hi: Int, column: Int, into runs: UnsafeMutablePointer<gt_kv_run>) -> Int {
        let (first, n1, n2) = slots(layer: layer, from: lo, to: hi)
        guard n1 > 0 else { return 0 }
        let keys = UnsafePointer(keys(layer: layer)) + column
        let values = UnsafePointer(values(layer: layer)) + column
        runs[0] = gt_kv_run(keys: keys + first * kvDim, values: values + first * kvDim, first: lo, count: n1)
        guard n2 > 0 else { return 1 }
        runs[1] = gt_kv_run(keys: keys, values: values, first: lo + n1, count: n2)
        return 2
    }

    /// `runs` for an f16 cache, for `gt_attention_rows_f16` (positions from `lo` on).
    func runsF16(layer: Int, from lo: Int, to hi: Int, column: Int, into runs: UnsafeMutablePointer<gt_kv_run_f16>)
        -> Int
    {
        let (first, n1, n2) = slots(layer: layer, from: lo, to: hi)
        guard n1 > 0 else { return 0 }
        let keys = UnsafePointer(keysF16(layer: layer)) + column
        let values = UnsafePointer(valuesF16(layer: layer)) + column
        runs[0] = gt_kv_run_f16(keys: keys + first * kvDim, values: values + first * kvDim, first: lo, count: n1)
        guard n2 > 0 else { return 1 }
        runs[1] = gt_kv_run_f16(keys: keys, values: values, first: lo + n1, count: n2)
        return 2
    }

    /// Where positions lo..<hi of layer `layer` are: `n1` slots from slot `first`, then (where
    /// a ring wraps) `n2` from slot 0.
    private func slots(layer: Int, from lo: Int, to hi: Int) -> (first: Int, n1: Int, n2: Int) {
        guard lo < hi else { return (0, 0, 0) }
        let c = capacities[layer]
        precondition(hi - lo <= c, "positions \(lo)..<\(hi) do not fit layer \(layer)'s \(c) slots")
        let first = lo % c
        let n1 = min(hi - lo, c - first)
        return (first, n1, hi - lo - n1)
    }
}
