import Foundation
import XCTest

/// `-m` naming something that is not a model file: every command that takes a model answers
/// at once with one `error:` line (issue 16, item 6: a FIFO used to hang in `open()`).
final class CLIModelPathTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        _ = try GemmaTinyCLI.binary()
        dir = NSTemporaryDirectory() + "gt-mpath-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Each command that loads a model, with `model` as its model file.
    func commands(model: String) throws -> [[String]] {
        let text = dir + "/text.txt"
        try "Some text to measure.".write(toFile: text, atomically: false, encoding: .utf8)
        return [
            ["run", "-m", model, "-p", "hi", "-n", "2"],
            ["chat", "-m", model],
            ["tokenize", "-m", model, "-p", "hi"],
            ["perplexity", "-m", model, "-f", text],
            ["bench", "-m", model, "-p", "4", "-n", "4", "-r", "1"],
        ]
    }

    func testFIFOAsModelIsRefusedAtOnce() throws {
        let fifo = dir + "/model.gtm"
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        for arguments in try commands(model: fifo) {
            let o = try GemmaTinyCLI.run(arguments, timeout: 20)
            GemmaTinyCLI.assertOneLineError(o, contains: "\(fifo): not a regular file")
        }
    }

    func testDirectoryAndDeviceAsModelAreRefused() throws {
        for model in [dir!, "/dev/zero"] {
            for arguments in try commands(model: model) {
                GemmaTinyCLI.assertOneLineError(try GemmaTinyCLI.run(arguments, timeout: 20), contains: "not a regular file")
            }
        }
    }
}
