import Foundation
@testable import GemmaTiny
import XCTest

/// The memory warning of the commands (before loading; the run goes on), with the memory they
/// see faked through GEMMA_TINY_MEMORY_ROOT or, as root, a real small cgroup; and
/// scripts/fit-test.sh.
final class MemoryFitCLITests: XCTestCase {
    var modelPath = ""

    override func setUpWithError() throws {
        modelPath = try ModelFixtures.convertedPath("tiny-gemma", .q8)
        _ = try GemmaTinyCLI.binary()
    }

    /// What a run with default settings needs, by the library's estimate.
    func needed(ctx: Int? = nil) throws -> Int {
        let file = try ModelFixtures.model("tiny-gemma", .q8).file
        return try MemoryEstimate(file: file, session: .init(contextLength: ctx)).totalBytes
    }

    func run(_ arguments: [String], root: String) throws -> GemmaTinyCLI.Output {
        try GemmaTinyCLI.run(arguments, extraEnvironment: ["GEMMA_TINY_MEMORY_ROOT": root])
    }

    func warningLines(_ stderr: String) -> [Substring] {
        stderr.split(separator: "\n").filter { $0.hasPrefix("warning: ") }
    }

    func testRunWarnsBeforeLoadingAndStillRuns() throws {
        let args = ["run", "-m", modelPath, "-p", "Hello", "--temp", "0", "-n", "6", "--ignore-eos"]
        let roomy = try run(args, root: FakeMemoryRoot.v1(limit: 64 * FakeMemoryRoot.gib, for: self))
        XCTAssertEqual(roomy.status, 0, roomy.stderr)
        XCTAssertEqual(roomy.stderr, "", "no warning when it fits")

        let needed = try needed()
        let tight = try run(args, root: FakeMemoryRoot.v1(limit: needed - 1, for: self))
        XCTAssertEqual(tight.status, 0, "a warning, not a refusal: \(tight.stderr)")
        XCTAssertEqual(tight.stdout, roomy.stdout, "the same text")
        let warnings = warningLines(tight.stderr)
        XCTAssertEqual(warnings.count, 1, tight.stderr)
        XCTAssertTrue(tight.stderr.hasPrefix("warning: "), "before anything else: \(tight.stderr)")
        let w = String(warnings.first ?? "")
        for text in ["needs about \(ByteCountText.format(needed))", "cgroup v1 memory limit", "on /job",
                     "512-token context", "very slow", "Would fit: --ctx"] {
            XCTAssertTrue(w.contains(text), "\(text) in: \(w)")
        }
    }

    /// Each command counts its own context: --ctx, perplexity's 512, bench's 2048 (capped).
    func testTheContextCountedIsTheCommandsOwn() throws {
        let root = try FakeMemoryRoot.v1(limit: try needed(ctx: 1), for: self)  // room for a 1-token context only
        let text = NSTemporaryDirectory() + "memfit-ppl-\(UUID().uuidString).txt"
        try String(repeating: "the quick brown fox jumps over the lazy dog. ", count: 40).write(toFile: text, atomically: false, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: text) }
        let cases: [(args: [String], context: String)] = [
            (["run", "-m", modelPath, "-p", "Hi", "-n", "1", "--ctx", "100"], "100-token context"),
            (["perplexity", "-m", modelPath, "-f", text, "--ctx", "64"], "64-token context"),
            (["bench", "-m", modelPath, "-p", "0", "-n", "2", "-r", "1", "--no-bandwidth"], "512-token context"),
        ]
        for c in cases {
            let o = try run(c.args, root: root)
            XCTAssertEqual(o.status, 0, "\(c.args[0]): \(o.stderr)")
            let w = warningLines(o.stderr)
            XCTAssertEqual(w.count, 1, "\(c.args[0]): \(o.stderr)")
            XCTAssertTrue(w.first?.contains(c.context) == true, "\(c.args[0]) should count a \(c.context): \(o.stderr)")
        }
        // tokenize loads no weights: no check.
        let tokenize = try run(["tokenize", "-m", modelPath, "-p", "Hi"], root: root)
        XCTAssertEqual(tokenize.status, 0, tokenize.stderr)
        XCTAssertTrue(warningLines(tokenize.stderr).isEmpty, tokenize.stderr)
    }

    /// As root: gemma-tiny in a real cgroup whose limit is below its estimate warns (and runs:
    /// the estimate has a margin over what the tiny model really takes).
    func testRealCgroupBelowTheEstimate() throws {
        let needed = try needed()
        let limit = (needed - 2 * FakeMemoryRoot.mib) & ~4095  // the kernel keeps whole pages
        let cgroup = try RealMemoryCgroup(limit: limit, for: self)
        let o = try cgroup.run(try GemmaTinyCLI.binary(), ["run", "-m", modelPath, "-p", "Hello", "--temp", "0", "-n", "4"])
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertEqual(warningLines(o.stderr).count, 1, o.stderr)
        XCTAssertTrue(o.stderr.contains("memory limit \(ByteCountText.format(limit)) on /\((cgroup.path as NSString).lastPathComponent)"),
                      o.stderr)

        let roomy = try RealMemoryCgroup(limit: needed + 256 * FakeMemoryRoot.mib, for: self)
        let fine = try roomy.run(try GemmaTinyCLI.binary(), ["run", "-m", modelPath, "-p", "Hello", "--temp", "0", "-n", "4"])
        XCTAssertEqual(fine.status, 0, fine.stderr)
        XCTAssertEqual(fine.stderr, "")
    }
}
