import Foundation
import XCTest

/// Careless input to the commands gets a message that says what is wrong (issue 16, the
/// smaller items).
final class CLIUserMistakeTests: XCTestCase {
    var modelPath: String!

    override func setUpWithError() throws {
        modelPath = try ModelFixtures.convertedPath("tiny-gemma", .bf16)
        _ = try GemmaTinyCLI.binary()
    }

    /// `perplexity -f` with a missing file says why it cannot read it, as `run -f` does.
    func testPerplexityMissingFileSaysWhy() throws {
        let o = try GemmaTinyCLI.run(["perplexity", "-m", modelPath, "-f", "/nonexistent/text.txt"])
        GemmaTinyCLI.assertOneLineError(o, contains: "cannot read /nonexistent/text.txt: no such file")
    }

    /// In `chat`, a mistyped command is reported, not sent to the model; text that merely
    /// starts with a slash still is a message.
    func testChatUnknownCommandIsNotSentToTheModel() throws {
        let o = try GemmaTinyCLI.run(["chat", "-m", modelPath, "--temp", "0", "-n", "2"], stdin: "/foo\n/quit\n")
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertEqual(o.stdout, "", "nothing was generated")
        XCTAssertTrue(o.stderr.contains("error: unknown command /foo (commands: /reset, /quit)"), o.stderr)
        let path = try GemmaTinyCLI.run(["chat", "-m", modelPath, "--temp", "0", "-n", "2"], stdin: "/usr/bin is a folder?\n")
        XCTAssertEqual(path.status, 0, path.stderr)
        XCTAssertFalse(path.stdout.isEmpty, "a message starting with a slash is answered")
        XCTAssertFalse(path.stderr.contains("unknown command"), path.stderr)
    }
}
