/// Longest-prefix matching against a fixed set of byte strings (user-defined pieces, and the
/// text of special tokens). A byte trie: the root is a direct 256-entry table because every
/// position of the input probes it; deeper nodes keep a short edge list.
final class PrefixMatcher: @unchecked Sendable {  // immutable after init
    private let rootChild: UnsafeMutablePointer<Int32>  // 256 entries, -1 = no edge
    private let edgeStart: UnsafeMutablePointer<Int32>  // per node: first edge
    private let edgeCount: UnsafeMutablePointer<Int32>
    private let edgeByte: UnsafeMutablePointer<UInt8>
    private let edgeChild: UnsafeMutablePointer<Int32>
    private let nodeValue: UnsafeMutablePointer<Int32>  // id of the string ending here, or -1
    let isEmpty: Bool

    /// `strings` are (bytes, id); empty strings are ignored; for a repeated string the first id wins.
    init(_ strings: [(key: [UInt8], value: Int32)]) {
        // Build with Swift arrays, then freeze into flat memory.
        var children: [[(UInt8, Int32)]] = [[]]
        var value: [Int32] = [-1]
        for (key, id) in strings where !key.isEmpty {
            var node = 0
            for b in key {
                if let next = children[node].first(where: { $0.0 == b }) {
                    node = Int(next.1)
                } else {
                    children.append([])
                    value.append(-1)
                    children[node].append((b, Int32(children.count - 1)))
                    node = children.count - 1
                }
            }
            if value[node] < 0 { value[node] = id }
        }
        isEmpty = children[0].isEmpty
        let nodes = children.count
        let edges = children.reduce(0) { $0 + $1.count }
        rootChild = .allocate(capacity: 256)
        rootChild.initialize(repeating: -1, count: 256)
        edgeStart = .allocate(capacity: nodes)
        edgeCount = .allocate(capacity: nodes)
        edgeByte = .allocate(capacity: max(edges, 1))
        edgeChild = .allocate(capacity: max(edges, 1))
        nodeValue = .allocate(capacity: nodes)
        var e = 0
        for n in 0..<nodes {
            edgeStart[n] = Int32(e)
            edgeCount[n] = Int32(children[n].count)
            nodeValue[n] = value[n]
            for (b, child) in children[n] {
                edgeByte[e] = b
                edgeChild[e] = child
                e += 1
                if n == 0 { rootChild[Int(b)] = child }
            }
        }
    }

    deinit {
        rootChild.deallocate()
        edgeStart.deallocate()
        edgeCount.deallocate()
        edgeByte.deallocate()
        edgeChild.deallocate()
        nodeValue.deallocate()
    }

    /// The longest string that is a prefix of the `length` bytes at `p`: its byte length and id,
    /// or length 0 when none matches.
    func longestMatch(_ p: UnsafePointer<UInt8>, _ length: Int) -> (length: Int, id: Int32) {
        var best: (length: Int, id: Int32) = (0, -1)
        forEachMatch(p, length) { best = ($0, $1) }  // shortest first: the last is the longest
        return best
    }

    /// Calls `body` with the byte length and id of every string that is a prefix of the
    /// `length` bytes at `p`, shortest first.
    @inline(__always)
    func forEachMatch(_ p: UnsafePointer<UInt8>, _ length: Int, _ body: (Int, Int32) -> Void) {
        guard length > 0 else { return }
        var node = Int(rootChild[Int(p[0])])
        var i = 1
        while node >= 0 {
            let v = nodeValue[node]
            if v >= 0 { body(i, v) }
            if i == length { break }
            let b = p[i]
            let start = Int(edgeStart[node])
            let end = start + Int(edgeCount[node])
            var next = -1
            var e = start
            while e < end {
                if edgeByte[e] == b { next = Int(edgeChild[e]); break }
                e += 1
            }
            node = next
            i += 1
        }
    }
}
