import Foundation
@testable import GemmaTiny
import XCTest

/// scripts/compare-llama.py: alternated rounds of gemma-tiny bench and llama-bench, their medians
/// and ratios. Stand-ins print the two tools' JSON with known figures and log how they were run;
/// one test reads the real gemma-tiny's JSON on the tiny fixture model.
final class CompareLlamaScriptTests: XCTestCase {
    let script = ModelFixtures.repoRoot.appendingPathComponent("scripts/compare-llama.py").path
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gt-compare-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for name in ["model.gtm", "model.gguf"] { FileManager.default.createFile(atPath: "\(dir)/\(name)", contents: Data()) }
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func runScript(_ arguments: [String]) throws -> GemmaTinyCLI.Output {
        try GemmaTinyCLI.run(["python3", script] + arguments, executable: "/usr/bin/env",
                             extraEnvironment: ["PYTHONDONTWRITEBYTECODE": "1"])
    }

    /// A stand-in tool at `dir/name`: each call appends "name ARGS" to dir/log and prints the
    /// next of `outputs` (the last one repeats), as `printf '%s'` would.
    func stub(_ name: String, outputs: [String], status: Int = 0, message: String = "") throws -> String {
        let path = "\(dir)/\(name)"
        var cases = ""
        for (i, output) in outputs.enumerated() {
            let quoted = output.replacingOccurrences(of: "'", with: "'\\''")
            cases += "  \(i == outputs.count - 1 ? "*" : String(i))) printf '%s\\n' '\(quoted)' ;;\n"
        }
        let script = """
            #!/bin/sh
            echo "\(name) $*" >> '\(dir)/log'
            n=$(cat '\(dir)/\(name).count' 2>/dev/null || echo 0)
            echo $((n + 1)) > '\(dir)/\(name).count'
            [ \(status) -eq 0 ] || { echo '\(message)' >&2; exit \(status); }
            case $n in
            \(cases)esac

            """
        try script.write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    /// gemma-tiny bench -o json with a pp and a tg test.
    func gemmaJSON(pp: Double, tg: Double) -> String {
        """
        {"results": [{"n_prompt": 64, "n_gen": 0, "n_depth": 0, "threads": 2, "median_ts": \(pp)},
                     {"n_prompt": 0, "n_gen": 16, "n_depth": 0, "threads": 2, "median_ts": \(tg)}]}
        """.replacingOccurrences(of: "\n", with: " ")
    }

    /// llama-bench -o jsonl: a line per test.
    func llamaJSONL(pp: Double, tg: Double, gen: Int = 16) -> String {
        """
        {"n_prompt": 64, "n_gen": 0, "n_depth": 0, "n_threads": 2, "avg_ts": \(pp)}
        {"n_prompt": 0, "n_gen": \(gen), "n_depth": 0, "n_threads": 2, "avg_ts": \(tg)}
        """
    }

    func testMediansRatiosAndAlternation() throws {
        let gemma = try stub("gemma", outputs: [gemmaJSON(pp: 100, tg: 20), gemmaJSON(pp: 120, tg: 10), gemmaJSON(pp: 110, tg: 30)])
        let llama = try stub("llama", outputs: [llamaJSONL(pp: 50, tg: 10), llamaJSONL(pp: 100, tg: 10), llamaJSONL(pp: 55, tg: 20)])
        let o = try runScript(["--rounds", "3", "--bin", gemma, "--gemma-arg=--precise-inputs", "--llama-arg=--repack",
                               "--llama-arg=0", llama, "\(dir)/model.gtm", "\(dir)/model.gguf", "-p", "64", "-n", "16", "-t", "2"])
        XCTAssertEqual(o.status, 0, o.stderr)
        // gemma-tiny first in odd rounds, llama.cpp first in even ones.
        let log = try String(contentsOfFile: "\(dir)/log", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(log.map { $0.split(separator: " ")[0] }, ["gemma", "llama", "llama", "gemma", "gemma", "llama"])
        XCTAssertEqual(String(log[0]), "gemma bench -m \(dir)/model.gtm -p 64 -n 16 -t 2 --precise-inputs --no-bandwidth -o json")
        XCTAssertEqual(String(log[1]), "llama -m \(dir)/model.gguf -p 64 -n 16 -t 2 --repack 0 -o jsonl")
        XCTAssertTrue(o.stdout.contains("round 2: pp64 t2 120.00 / 100.00; tg16 t2 10.00 / 10.00"), o.stdout)
        // pp: medians 110 and 55 (2.00x); rounds' ratios 2.00, 1.20, 2.00. tg: 20 and 10; ratios 2.00, 1.00, 1.50.
        XCTAssertTrue(o.stdout.contains("| pp64 t2 | 110.00 (100.00-120.00) | 55.00 (50.00-100.00) | 2.00x | 2.00x (1.20-2.00) |"), o.stdout)
        XCTAssertTrue(o.stdout.contains("| tg16 t2 | 20.00 (10.00-30.00) | 10.00 (10.00-20.00) | 2.00x | 1.50x (1.00-2.00) |"), o.stdout)
    }

    func testFailuresAreOneLineErrors() throws {
        let gemma = try stub("gemma", outputs: [gemmaJSON(pp: 100, tg: 20)])
        let model = "\(dir)/model.gtm", gguf = "\(dir)/model.gguf"
        let cases: [([String], String)] = [
            (["--bin", gemma, try stub("failing", outputs: [""], status: 3, message: "boom"), model, gguf],
             "llama-bench failed with exit status 3: boom"),
            (["--bin", gemma, try stub("other", outputs: [llamaJSONL(pp: 50, tg: 10, gen: 32)]), model, gguf],
             "the tools ran different tests"),
            (["--bin", gemma, try stub("garbled", outputs: ["not json"]), model, gguf], "llama-bench printed no results"),
            (["--bin", gemma, try stub("llama", outputs: [llamaJSONL(pp: 50, tg: 10)]), model, "\(dir)/missing.gguf"],
             "no model file at \(dir)/missing.gguf"),
            (["--bin", "\(dir)/missing-gemma", "\(dir)/llama", model, gguf], "gemma-tiny is not an executable file"),
            (["--rounds", "0", "--bin", gemma, "\(dir)/llama", model, gguf], "--rounds must be at least 1"),
        ]
        for (args, message) in cases {
            let o = try runScript(args)
            XCTAssertEqual(o.status, 1, "\(args): \(o.stderr)")
            XCTAssertEqual(o.stderr.split(separator: "\n").count, 1, o.stderr)
            XCTAssertTrue(o.stderr.hasPrefix("compare-llama: error: ") && o.stderr.contains(message), "\(args): \(o.stderr)")
            XCTAssertFalse(o.stdout.contains("| test |"), o.stdout)
        }
    }

    /// The real gemma-tiny's JSON (tiny model, one thread) against a stand-in llama-bench.
    func testReadsTheRealBenchJSON() throws {
        let model = try ModelFixtures.convertedPath("tiny-gemma", .q8)
        let llama = try stub("llama", outputs: ["""
            {"n_prompt": 8, "n_gen": 0, "n_depth": 4, "n_threads": 1, "avg_ts": 1.5}
            {"n_prompt": 0, "n_gen": 4, "n_depth": 4, "n_threads": 1, "avg_ts": 1.5}
            """])
        let o = try runScript(["--rounds", "1", "--bin", try GemmaTinyCLI.binary(), llama, model, "\(dir)/model.gguf",
                               "-p", "8", "-n", "4", "-d", "4", "-r", "1", "-t", "1"])
        XCTAssertEqual(o.status, 0, o.stderr)
        let rows = o.stdout.split(separator: "\n").filter { $0.hasPrefix("| pp8 t1 @ d4 | ") || $0.hasPrefix("| tg4 t1 @ d4 | ") }
        XCTAssertEqual(rows.count, 2, o.stdout)
        for row in rows {
            let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            let speed = Double(cells[1].split(separator: " ")[0]) ?? 0
            XCTAssertGreaterThan(speed, 0, String(row))
            XCTAssertEqual(cells[2], "1.50 (1.50-1.50)")
        }
    }
}
