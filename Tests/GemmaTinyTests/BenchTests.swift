import Foundation
@testable import GemmaTiny
import XCTest

/// `gemma-tiny bench` on the fixture model with tiny settings, and `perplexity` with batched
/// prompt processing (runs the built executable, as CLITests does).
final class BenchTests: XCTestCase {
    var modelPath: String!

    override func setUpWithError() throws {
        modelPath = try ModelFixtures.convertedPath("tiny-gemma", .q8)
        _ = try CLITests.binary()
    }

    func run(_ arguments: [String]) throws -> GemmaTinyCLI.Output { try GemmaTinyCLI.run(arguments) }

    /// The cells of the Markdown table rows (lines starting with "|"), without the separator rows.
    func tableRows(_ text: Substring) -> [[String]] {
        text.split(separator: "\n")
            .filter { $0.hasPrefix("|") && !$0.hasPrefix("| ---") }
            .map { $0.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) } }
    }

    func testBenchMarkdownTable() throws {
        let o = try run(["bench", "-m", modelPath, "-p", "8", "-n", "4", "-r", "2", "-t", "1,2", "--no-bandwidth"])
        XCTAssertEqual(o.status, 0, o.stderr)
        let parts = o.stdout.components(separatedBy: "\n\n")
        XCTAssertEqual(parts.count, 3, o.stdout)
        let speed = tableRows(Substring(parts[0]))
        XCTAssertEqual(speed.first, ["model", "size", "params", "kernels", "threads", "n_batch", "test",
                                     "t/s (median ± sd)", "min – max"], o.stdout)
        let rows = speed.dropFirst()
        XCTAssertEqual(rows.map { "\($0[4]) \($0[6])" }, ["1 pp8", "1 tg4", "2 pp8", "2 tg4"], o.stdout)
        for row in rows {
            XCTAssertTrue(row[0].hasPrefix("gemma ") && row[0].hasSuffix(" q8"), row[0])
            XCTAssertFalse(row[3].isEmpty, "kernels")
            XCTAssertEqual(row[5], "\(InferenceSession.defaultBatchSize)")
            let median = row[7].components(separatedBy: " ± ").compactMap(Double.init)
            let range = row[8].components(separatedBy: " – ").compactMap(Double.init)
            XCTAssertEqual(median.count, 2, row[7])
            XCTAssertEqual(range.count, 2, row[8])
            XCTAssertGreaterThan(median[0], 0)
            XCTAssertLessThanOrEqual(range[0], median[0] * 1.0001)
            XCTAssertGreaterThanOrEqual(range[1], median[0] * 0.9999)
        }
        let memory = tableRows(Substring(parts[1]))
        XCTAssertEqual(memory.first?.first, "threads")
        XCTAssertEqual(memory.dropFirst().map { $0[0] }, ["1", "2"], o.stdout)
        #if os(Linux)
        for row in memory.dropFirst() { XCTAssertTrue(row[2].hasSuffix("iB"), "RssAnon: \(row)") }
        #endif
        XCTAssertTrue(parts[2].hasPrefix("load time "), parts[2])
        XCTAssertTrue(parts[2].contains("peak RSS (VmHWM)"), parts[2])
        // The model's 512 positions cap the default --ctx 2048, with a note.
        XCTAssertTrue(o.stderr.contains("using 512"), o.stderr)
    }

    /// With tg tests and no --no-bandwidth, a paragraph sets each tg result against the read
    /// bandwidth: weights GB per token x tok/s = GB/s = percent of the bandwidth, consistently.
    func testBenchBandwidthLines() throws {
        let o = try run(["bench", "-m", modelPath, "-p", "0", "-n", "4", "-r", "2", "-t", "1"])
        XCTAssertEqual(o.status, 0, o.stderr)
        let line = try XCTUnwrap(o.stdout.split(separator: "\n").first { $0.hasPrefix("tg4 with 1 threads: ") }, o.stdout)
        let numbers = line.split(whereSeparator: { " :x=%".contains($0) }).compactMap { Double($0) }
        // [1 (threads), GB/token, tok/s, GB/s, percent, bandwidth]
        XCTAssertEqual(numbers.count, 6, String(line))
        guard numbers.count == 6 else { return }
        XCTAssertEqual(numbers[1] * numbers[2], numbers[3], accuracy: numbers[3] * 0.01, String(line))
        XCTAssertEqual(numbers[3] / numbers[5] * 100, numbers[4], accuracy: numbers[4] * 0.01, String(line))
    }

    func testBenchJSON() throws {
        let o = try run(["bench", "-m", modelPath, "-p", "8,16", "-n", "4", "-r", "2", "-t", "1", "-b", "3", "-o", "json", "--ctx", "64"])
        XCTAssertEqual(o.status, 0, o.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(o.stdout.utf8)) as? [String: Any], o.stdout)
        XCTAssertEqual(json["context_length"] as? Int, 64)
        XCTAssertEqual(json["repetitions"] as? Int, 2)
        XCTAssertGreaterThan(json["load_ms"] as? Double ?? -1, 0)
        let model = try XCTUnwrap(json["model"] as? [String: Any])
        let gemma = try ModelFixtures.model("tiny-gemma", .q8)
        XCTAssertEqual(model["parameters"] as? Int, gemma.parameterCount)
        XCTAssertEqual(model["weights_type"] as? String, "q8")
        XCTAssertGreaterThan(model["size_bytes"] as? Int ?? 0, 0)
        let results = try XCTUnwrap(json["results"] as? [[String: Any]])
        XCTAssertEqual(results.map { $0["test"] as? String }, ["pp8", "pp16", "tg4"])
        for r in results {
            let samples = try XCTUnwrap(r["samples_ts"] as? [Double])
            XCTAssertEqual(samples.count, 2)
            XCTAssertEqual((r["samples_ns"] as? [Int])?.count, 2)
            let median = try XCTUnwrap(r["median_ts"] as? Double)
            XCTAssertEqual(median, samples.reduce(0, +) / 2, accuracy: median * 1e-9)
            XCTAssertLessThanOrEqual(r["min_ts"] as! Double, median)
            XCTAssertGreaterThanOrEqual(r["max_ts"] as! Double, median)
            XCTAssertNotNil(r["stddev_ts"] as? Double)
            XCTAssertEqual(r["threads"] as? Int, 1)
            XCTAssertEqual(r["batch_size"] as? Int, 3)
            XCTAssertFalse((r["kernels"] as? String ?? "").isEmpty)
        }
        // The read bandwidth (tg tests present) and, in Markdown, each tg result set against it.
        let bandwidth = try XCTUnwrap(json["read_bandwidth"] as? [[String: Any]], o.stdout)
        XCTAssertEqual(bandwidth.map { $0["threads"] as? Int }, [1])
        let gbps = try XCTUnwrap(bandwidth.first?["read_gb_per_s"] as? Double)
        XCTAssertGreaterThan(gbps, 0.1)
        XCTAssertLessThan(gbps, 10_000)
        XCTAssertEqual(results[1]["n_prompt"] as? Int, 16)
        XCTAssertEqual(results[2]["n_gen"] as? Int, 4)
        let memory = try XCTUnwrap(json["memory"] as? [[String: Any]])
        XCTAssertEqual(memory.count, 1)
        XCTAssertEqual(memory[0]["after_test"] as? String, "tg")
        #if os(Linux)
        XCTAssertGreaterThan(memory[0]["rss_anon_bytes"] as? Int ?? 0, 0)
        XCTAssertGreaterThan(json["peak_rss_bytes"] as? Int ?? 0, 0)
        #endif
    }

    /// -d: the tests again with that many tokens already in the cache, labelled as llama-bench does.
    func testBenchDepth() throws {
        let o = try run(["bench", "-m", modelPath, "-p", "8", "-n", "4", "-d", "0,16", "-r", "1", "-t", "1", "-o", "json",
                         "--no-bandwidth", "--ctx", "64"])
        XCTAssertEqual(o.status, 0, o.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(o.stdout.utf8)) as? [String: Any], o.stdout)
        let results = try XCTUnwrap(json["results"] as? [[String: Any]])
        XCTAssertEqual(results.map { $0["test"] as? String }, ["pp8", "tg4", "pp8 @ d16", "tg4 @ d16"])
        XCTAssertEqual(results.map { $0["n_depth"] as? Int }, [0, 0, 16, 16])
        let deep = try run(["bench", "-m", modelPath, "-p", "8", "-n", "0", "-d", "60", "--ctx", "64"])
        XCTAssertNotEqual(deep.status, 0)
        XCTAssertTrue(deep.stderr.hasPrefix("error: ") && deep.stderr.contains("depth 60"), deep.stderr)
    }

    func testBenchErrors() throws {
        let long = try run(["bench", "-m", modelPath, "-p", "100", "-n", "0", "--ctx", "64"])
        XCTAssertNotEqual(long.status, 0)
        XCTAssertTrue(long.stderr.hasPrefix("error: ") && long.stderr.contains("pp100"), long.stderr)
        let bad = try run(["bench", "-m", modelPath, "-t", "1,x"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.hasPrefix("error: "), bad.stderr)
        let zero = try run(["bench", "-m", modelPath, "-r", "0"])
        XCTAssertNotEqual(zero.status, 0)
        XCTAssertTrue(zero.stderr.contains("-r must be at least 1"), zero.stderr)
        // Counts whose sums would overflow (they crashed once): refused before any arithmetic.
        let max = "9223372036854775807"
        for args in [["-p", "8", "-n", "4", "-d", max], ["-p", "0", "-n", max], ["-p", max, "-n", "0", "-d", "1"]] {
            GemmaTinyCLI.assertOneLineError(try run(["bench", "-m", modelPath, "-r", "1", "--no-bandwidth"] + args),
                                            contains: "token counts from 0 to 16777216")
        }
        GemmaTinyCLI.assertOneLineError(try run(["bench", "-m", modelPath, "-p", "8", "-n", "0", "-c", max, "-d", max]),
                                        contains: "16777216")
    }

    /// Perplexity feeds each window in batches and scores every position of its second half:
    /// the figure does not depend on the batch size.
    func testBenchPerplexityIsTheSameForEveryBatchSize() throws {
        let text = String(repeating: "The cat sat on the mat. Permission is hereby granted, free of charge. ", count: 12)
        let file = ModelFixtures.tempDir + "/ppl-batch-\(UUID().uuidString).txt"
        try text.write(toFile: file, atomically: false, encoding: .utf8)
        var lines: [String] = []
        for batch in ["1", "5", "64"] {
            let o = try run(["perplexity", "-m", modelPath, "-f", file, "--ctx", "32", "-b", batch])
            XCTAssertEqual(o.status, 0, o.stderr)
            let line = o.stdout.split(separator: "\n").last { $0.hasPrefix("Final estimate: PPL = ") }
            lines.append(String(try XCTUnwrap(line, o.stdout)))
        }
        XCTAssertEqual(Set(lines).count, 1, "\(lines)")
    }
}
