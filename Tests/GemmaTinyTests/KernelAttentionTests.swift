import Foundation
import GemmaKernels
@testable import GemmaTiny
import XCTest

/// The tiled attention kernel (`gt_attention_rows`) from Swift, on every path this CPU runs:
/// within the stated bound of an f64 softmax (5e-6 * max|v|, 1e-5 soft-capped; gemma_ops.h), and
/// bit-identical on each path whether rows are batched or fed one at a time, blocked or split
/// over threads. (kernels-test/attention_test.c checks the same on AArch64 under qemu.) Each
/// problem also runs over an f16 cache (`gt_attention_rows_f16`, keys and values rounded by
/// `gt_f16_store`), against the f64 softmax of the same rounded values, with the same bounds.
final class KernelAttentionTests: XCTestCase {
    struct Problem {
        let d: Int, group: Int, positions: Int, batch: Int, window: Int?, softcap: Float
        var stride: Int { d + 5 }
        var scale: Float { 6 / Float(d).squareRoot() }
    }

    static var paths: [Int32] {
        (0..<GT_ISA_COUNT).map { Int32($0) }.filter { $0 == GT_ISA_SCALAR || gt_isa_supported($0) != 0 }
    }

    func run(_ p: Problem) {
        run(p, f16: false)
        run(p, f16: true)
    }

    func run(_ p: Problem, f16: Bool) {
        var rng = Xoshiro256StarStar(seed: UInt64(p.d * 1000 + p.positions))
        func random() -> Float { Float(Double(rng.next() >> 11) / Double(1 << 53)) * 2 - 1 }
        var keys = (0..<(p.positions * p.stride)).map { _ in random() }
        var values = (0..<(p.positions * p.stride)).map { _ in random() * 2 }
        // An f16 cache: the halves, and the floats they stand for (what the reference uses).
        var keys16 = [UInt16](repeating: 0, count: keys.count), values16 = keys16
        if f16 {
            gt_f16_store(&keys16, keys, keys.count)
            gt_f16_store(&values16, values, values.count)
            keys = keys16.map { gt_f16_to_f32($0) }
            values = values16.map { gt_f16_to_f32($0) }
        }
        let queries = (0..<(p.batch * p.group * p.d)).map { _ in random() }
        let rowCount = p.batch * p.group, first = p.positions - p.batch
        let pool = makeDefaultKernels(threads: 3)
        XCTAssertEqual(pool.parallelism, 3)
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: gt_attention_scratch_bytes(p.d) * 4, alignment: 64)
        defer { scratch.deallocate() }
        keys.withUnsafeBufferPointer { k in
            values.withUnsafeBufferPointer { v in
                keys16.withUnsafeBufferPointer { k16 in
                values16.withUnsafeBufferPointer { v16 in
                queries.withUnsafeBufferPointer { qb in
                    var ranges: [(lo: Int, hi: Int)] = []
                    for r in 0..<rowCount {
                        let pos = first + r / p.group
                        ranges.append((p.window.map { max(0, pos - $0 + 1) } ?? 0, pos + 1))
                    }
                    // Runs: cached positions in two pieces, then the batch.
                    let lo0 = ranges[0].lo, cut = lo0 + (first - lo0) / 2
                    let split = [(lo0, cut), (cut, first), (first, p.positions)]
                    let whole = [(0, p.positions)]
                    func attend(_ isa: Int32, rows: Range<Int>, runs: [(Int, Int)], into out: UnsafeMutablePointer<Float>,
                                scratch: UnsafeMutableRawPointer) {
                        let list = rows.map { r in
                            gt_attention_row(q: qb.baseAddress! + r * p.d, out: out + r * p.d, lo: ranges[r].lo, hi: ranges[r].hi)
                        }
                        if f16 {
                            let r16 = runs.map { a, b in
                                gt_kv_run_f16(keys: k16.baseAddress! + a * p.stride, values: v16.baseAddress! + a * p.stride,
                                              first: a, count: b - a)
                            }
                            _ = gt_attention_rows_f16_isa(isa, list, list.count, r16, r16.count, p.stride, p.d, p.scale,
                                                          p.softcap, scratch)
                            return
                        }
                        let r32 = runs.map { a, b in
                            gt_kv_run(keys: k.baseAddress! + a * p.stride, values: v.baseAddress! + a * p.stride, first: a, count: b - a)
                        }
                        _ = gt_attention_rows_isa(isa, list, list.count, r32, r32.count, p.stride, p.d, p.scale, p.softcap, scratch)
                    }
                    // The f64 softmax of every 5th row (and the last), with max |v| over its positions.
                    var reference: [(Int, [Double], Double)] = []
                    for r in stride(from: 0, to: rowCount, by: 5).map({ $0 }) + [rowCount - 1] {
                        var s: [Double] = []
                        for t in ranges[r].lo..<ranges[r].hi {
                            var dot = 0.0
                            for i in 0..<p.d { dot += Double(queries[r * p.d + i]) * Double(keys[t * p.stride + i]) }
                            dot *= Double(p.scale)
                            if p.softcap > 0 { dot = Foundation.tanh(dot / Double(p.softcap)) * Double(p.softcap) }
                            s.append(dot)
                        }
                        let m = s.max()!
                        let e = s.map { Foundation.exp($0 - m) }, sum = e.reduce(0, +)
                        var vmax = 0.0, exact = [Double](repeating: 0, count: p.d)
                        for (j, t) in (ranges[r].lo..<ranges[r].hi).enumerated() {
                            for i in 0..<p.d {
                                let v = Double(values[t * p.stride + i])
                                vmax = max(vmax, abs(v))
                                exact[i] += e[j] * v
                            }
                        }
                        reference.append((r, exact.map { $0 / sum }, vmax))
                    }
                    for isa in Self.paths {
                        let what = "\(f16 ? "f16 " : "")\(String(cString: gt_isa_name(isa))) d=\(p.d) group=\(p.group) batch=\(p.batch) window=\(p.window ?? 0)"
                        var batched = [Float](repeating: 0, count: rowCount * p.d)
                        var alone = batched, threaded = batched
                        batched.withUnsafeMutableBufferPointer { attend(isa, rows: 0..<rowCount, runs: split, into: $0.baseAddress!, scratch: scratch) }
                        alone.withUnsafeMutableBufferPointer { o in
                            for r in 0..<rowCount { attend(isa, rows: r..<(r + 1), runs: whole, into: o.baseAddress!, scratch: scratch) }
                        }
                        XCTAssertEqual(batched, alone, "\(what): batch != one by one")
                        threaded.withUnsafeMutableBufferPointer { o in
                            let per = (rowCount + 2) / 3
                            pool.parallel { t in
                                let rows = min(t * per, rowCount)..<min((t + 1) * per, rowCount)
                                if !rows.isEmpty {
                                    attend(isa, rows: rows, runs: split, into: o.baseAddress!,
                                           scratch: scratch + (t + 1) * gt_attention_scratch_bytes(p.d))
                                }
                            }
                        }
                        XCTAssertEqual(batched, threaded, "\(what): threaded != single")
                        // Against the f64 softmax.
                        var worst = 0.0
                        for (r, exact, vmax) in reference {
                            for i in 0..<p.d { worst = max(worst, abs(Double(batched[r * p.d + i]) - exact[i]) / vmax) }
                        }
                        XCTAssertLessThanOrEqual(worst, p.softcap > 0 ? 1e-5 : 5e-6, what)
                    }
                }
                }
                }
            }
        }
    }

    func testKernelAttentionGemma3Shapes() {
        run(Problem(d: 256, group: 4, positions: 150, batch: 40, window: nil, softcap: 0))  // 270M global
        run(Problem(d: 256, group: 4, positions: 600, batch: 64, window: 512, softcap: 0))  // 270M sliding
        run(Problem(d: 256, group: 8, positions: 300, batch: 1, window: nil, softcap: 0))   // 2B decoding
    }

    func testKernelAttentionSoftcapAndTails() {
        run(Problem(d: 128, group: 2, positions: 90, batch: 17, window: 20, softcap: 50))
        run(Problem(d: 24, group: 1, positions: 70, batch: 70, window: nil, softcap: 5))
        run(Problem(d: 7, group: 3, positions: 33, batch: 5, window: 4, softcap: 0))
    }
}
