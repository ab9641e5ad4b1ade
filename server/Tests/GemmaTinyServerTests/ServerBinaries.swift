import Foundation
import XCTest

/// The executables the server tests run as subprocesses.
/// - gemma-tiny-serve: built by this package, beside the test bundle (or $GEMMA_TINY_SERVE_BIN).
/// - gemma-tiny: the core package's ($GEMMA_TINY_BIN, as scripts/test.sh sets it), or beside the
///   test bundle after `swift build --package-path server --product gemma-tiny`.
enum ServerBinaries {
    static func serve() throws -> String {
        try find("gemma-tiny-serve", override: "GEMMA_TINY_SERVE_BIN", hint: "swift build --package-path server")
    }

    static func gemmaTiny() throws -> String {
        try find("gemma-tiny", override: "GEMMA_TINY_BIN",
                 hint: "swift build --package-path server --product gemma-tiny, or set GEMMA_TINY_BIN to the core build's")
    }

    private static func find(_ name: String, override: String, hint: String) throws -> String {
        if let path = ProcessInfo.processInfo.environment[override] { return path }
        var candidates: [URL] = [Bundle.main.bundleURL]
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
        }
        candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
        for dir in candidates {
            var d = dir
            // Inside an .xctest bundle on macOS: walk up to the build folder.
            for _ in 0..<4 {
                let path = d.appendingPathComponent(name).path
                if FileManager.default.isExecutableFile(atPath: path) { return path }
                d = d.deletingLastPathComponent()
            }
        }
        throw XCTSkip("\(name) executable not found next to the tests; build it (\(hint)) or set \(override)")
    }
}
