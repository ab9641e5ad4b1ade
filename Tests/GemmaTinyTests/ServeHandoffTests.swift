import Foundation
import XCTest

/// `gemma-tiny serve` hands over to gemma-tiny-serve (the server package's executable) by exec:
/// beside gemma-tiny first, then on PATH; without one, a one-line error saying how to get it.
/// Stand-in servers here are shell scripts; the real handoff is tested in server/'s tests.
final class ServeHandoffTests: XCTestCase {
    var root: String!

    /// A copy of gemma-tiny in <root>/bin (so that it looks beside itself there), and an empty
    /// <root>/path folder as the whole PATH.
    override func setUpWithError() throws {
        let binary = try GemmaTinyCLI.binary()
        root = NSTemporaryDirectory() + "gemma-tiny-handoff-\(getpid())-\(UUID().uuidString.prefix(8))"
        for dir in ["bin", "path"] {
            try FileManager.default.createDirectory(atPath: root + "/" + dir, withIntermediateDirectories: true)
        }
        try FileManager.default.copyItem(atPath: binary, toPath: gemmaTiny)
        XCTAssertEqual(chmod(gemmaTiny, 0o755), 0)
    }

    override func tearDown() {
        if let root { try? FileManager.default.removeItem(atPath: root) }
    }

    var gemmaTiny: String { root + "/bin/gemma-tiny" }

    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["PATH"] = root + "/path"
        return env
    }

    /// A stand-in gemma-tiny-serve in `folder` that prints its tag, process id and arguments,
    /// then exits with status 7.
    func writeStandIn(in folder: String, tag: String) throws {
        let path = root + "/" + folder + "/gemma-tiny-serve"
        try "#!/bin/sh\necho \"\(tag) $$ $*\"\nexit 7\n".write(toFile: path, atomically: false, encoding: .utf8)
        XCTAssertEqual(chmod(path, 0o755), 0)
    }

    func testServeWithoutServerIsOneLineError() throws {
        for arguments in [["serve", "-m", "model.gtm", "--port", "0"], ["serve", "--help"], ["serve"]] {
            let o = try GemmaTinyCLI.run(arguments, executable: gemmaTiny, environment: environment)
            GemmaTinyCLI.assertOneLineError(o, contains: "gemma-tiny-serve")
            XCTAssertTrue(o.stderr.contains("swift build -c release --package-path server"), o.stderr)
            XCTAssertTrue(o.stderr.contains("scripts/dist.sh --server aarch64"), o.stderr)  // the way without Swift
            XCTAssertEqual(o.stdout, "")
        }
    }

    /// Every argument (--help and --version included) goes to the server verbatim; the server
    /// runs in the same process (an exec: same pid) and its exit status is gemma-tiny's.
    func testServeExecsTheServerBesideGemmaTiny() throws {
        try writeStandIn(in: "bin", tag: "beside")
        try writeStandIn(in: "path", tag: "on-path")
        let o = try GemmaTinyCLI.run(["serve", "--help", "-m", "a b.gtm", "--version", "--", "-x"],
                                     executable: gemmaTiny, environment: environment)
        XCTAssertEqual(o.status, 7, o.stderr)
        XCTAssertEqual(o.stdout, "beside \(o.pid) --help -m a b.gtm --version -- -x\n")
        XCTAssertEqual(o.stderr, "")
    }

    func testServeFindsTheServerOnPath() throws {
        try writeStandIn(in: "path", tag: "on-path")
        let o = try GemmaTinyCLI.run(["serve", "--port", "0"], executable: gemmaTiny, environment: environment)
        XCTAssertEqual(o.status, 7, o.stderr)
        XCTAssertEqual(o.stdout, "on-path \(o.pid) --port 0\n")
    }

    /// The top-level help still lists serve.
    func testHelpListsServe() throws {
        let o = try GemmaTinyCLI.run(["--help"], executable: gemmaTiny, environment: environment)
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertTrue(o.stdout.contains("serve"), o.stdout)
    }
}
