import Foundation
@testable import GemmaTiny
import XCTest

/// scripts/fit-test.sh: its argument checks anywhere, and, as root with a cgroup memory
/// controller, a whole measurement on the tiny fixture model.
final class FitTestScriptTests: XCTestCase {
    let script = ModelFixtures.repoRoot.appendingPathComponent("scripts/fit-test.sh").path

    func runScript(_ arguments: [String]) throws -> GemmaTinyCLI.Output {
        try GemmaTinyCLI.run([script] + arguments, executable: "/bin/bash")
    }

    func testRejectsBadArguments() throws {
        let model = try ModelFixtures.convertedPath("tiny-gemma", .q8)
        let bin = try GemmaTinyCLI.binary()
        for (args, message) in [(["--bin", bin, "lots", model], "SIZE must be a size"),
                                (["--bin", bin, "1.5Q", model], "SIZE must be a size"),
                                (["--bin", bin, "64M", "/nonexistent/model.gtm"], "no model file"),
                                (["--bin", "/nonexistent/gemma-tiny", "64M", model], "gemma-tiny not found"),
                                (["64M"], "usage:")] {
            let o = try runScript(args)
            XCTAssertNotEqual(o.status, 0, "\(args)")
            XCTAssertTrue(o.stderr.contains(message), "\(args): \(o.stderr)")
        }
    }

    /// Both runs on the tiny model: speeds, ratio, peak usage within the limit, cgroups removed.
    func testMeasuresInACgroupAndCleansUp() throws {
        let (base, _) = try RealMemoryCgroup.base()
        let model = try ModelFixtures.convertedPath("tiny-gemma", .q8)
        let o = try runScript(["--bin", try GemmaTinyCLI.binary(), "--keep-cache", "-n", "4", "256M", model, "-t", "1"])
        XCTAssertEqual(o.status, 0, o.stderr)
        let rows = o.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        let gemmaRows = rows.filter { $0.first == "gemma-tiny" }
        XCTAssertEqual(gemmaRows.map { String($0[1]) }, ["no", "256M"], o.stdout)
        for row in gemmaRows {
            let speed = row.count >= 6 ? Double(row[row[1] == "no" ? 3 : 2]) : nil
            XCTAssertNotNil(speed, "tokens/s in \(row)")
            XCTAssertGreaterThan(speed ?? 0, 0)
        }
        // The limited run's peak stays within the limit ("12.34 MiB").
        if let limited = gemmaRows.last, let peak = Double(limited[3]), limited[4] == "MiB" {
            XCTAssertLessThanOrEqual(peak, 256)
        } else {
            XCTFail("peak usage in MiB in \(gemmaRows.last ?? [])")
        }
        XCTAssertTrue(o.stdout.contains("gemma-tiny: 256M runs at "), o.stdout)
        XCTAssertTrue(o.stdout.contains("x the unconstrained speed"), o.stdout)
        // The script names its cgroups gemma-fit-test-PID-N and has exited by now; a cgroup whose
        // PID is alive belongs to another fit-test running at the same time (a measurement beside
        // the tests), not to this one.
        let left = try FileManager.default.contentsOfDirectory(atPath: base).filter { name in
            guard name.hasPrefix("gemma-fit-test-") else { return false }
            let pid = name.dropFirst("gemma-fit-test-".count).split(separator: "-").first.flatMap { Int32($0) }
            return pid.map { kill($0, 0) != 0 } ?? true
        }
        XCTAssertEqual(left, [], "cgroups left behind")
    }

    /// --llama-bench: the same two runs for llama.cpp (a stand-in printing llama-bench's JSON).
    func testLlamaBenchRunsInTheSameCgroups() throws {
        _ = try RealMemoryCgroup.base()
        let model = try ModelFixtures.convertedPath("tiny-gemma", .q8)
        let fake = NSTemporaryDirectory() + "fake-llama-bench-\(UUID().uuidString)"
        try "#!/bin/sh\necho '[ { \"n_gen\": 4, \"avg_ts\": 9.312, \"stddev_ts\": 0.1 } ]'\n"
            .write(toFile: fake, atomically: false, encoding: .utf8)
        chmod(fake, 0o755)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: fake) }
        let o = try runScript(["--bin", try GemmaTinyCLI.binary(), "--keep-cache", "-n", "4", "--llama-bench", fake, model,
                               "128M", model])
        XCTAssertEqual(o.status, 0, o.stderr)
        let llama = o.stdout.split(separator: "\n").filter { $0.hasPrefix("llama.cpp") }
        XCTAssertEqual(llama.count, 3, o.stdout)  // two rows and the ratio
        XCTAssertTrue(llama.prefix(2).allSatisfy { $0.contains(" 9.31 ") }, o.stdout)
        XCTAssertTrue(o.stdout.contains("llama.cpp: 128M runs at 1.000x"), o.stdout)
    }
}
