import Foundation
import XCTest

/// `gemma-quantize -o` never destroys an input or a special file, not even with `--force`
/// (issue 16, item 5), and a special file as input is refused at once (item 6). Every input is
/// a copy in a scratch folder: on a build without the checks these tests would otherwise
/// overwrite the fixtures.
final class QuantizePathTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gt-out-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    var fixtures: String { SyntheticCheckpoint.repositoryRoot + "/fixtures" }

    func copy(_ fixture: String) throws -> String {
        let target = dir + "/" + (fixture as NSString).lastPathComponent
        try FileManager.default.copyItem(atPath: fixtures + "/" + fixture, toPath: target)
        return target
    }

    /// Runs a conversion expected to be refused: one `error:` line mentioning `fragment`, exit 1.
    func expectRefused(_ arguments: [String], mentioning fragment: String, line: UInt = #line) throws {
        let r = try QuantizeProcess.run(arguments + ["--type", "q8"])
        XCTAssertEqual(r.status, 1, r.stderr, line: line)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "one line: \(r.stderr)", line: line)
        XCTAssertTrue(r.stderr.hasPrefix("error: "), r.stderr, line: line)
        XCTAssertTrue(r.stderr.contains(fragment), "'\(r.stderr)' should mention '\(fragment)'", line: line)
    }

    func fileType(_ path: String) -> mode_t {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : 0
    }

    func testOutputEqualToTheInputGGUFIsRefused() throws {
        let gguf = try copy("gguf/tiny-gemma3-bf16.gguf")
        let before = try Data(contentsOf: URL(fileURLWithPath: gguf))
        try expectRefused([gguf, "-o", gguf, "--force"], mentioning: "is an input")
        // The same file through a symlink and through a hard link.
        let symlink = dir + "/link.gtm", hardLink = dir + "/hard.gtm"
        try FileManager.default.createSymbolicLink(atPath: symlink, withDestinationPath: gguf)
        XCTAssertEqual(link(gguf, hardLink), 0)
        try expectRefused([gguf, "-o", symlink, "--force"], mentioning: "is an input")
        try expectRefused([gguf, "-o", hardLink, "--force"], mentioning: "is an input")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: gguf)), before, "the input is unchanged")
        XCTAssertEqual(fileType(symlink), S_IFLNK)
    }

    func testOutputEqualToAnInputShardIsRefused() throws {
        let folder = try copy("tiny-gemma-sharded")
        for name in ["model-00002-of-00002.safetensors", "tokenizer.model", "config.json"] {
            let path = folder + "/" + name
            let before = try Data(contentsOf: URL(fileURLWithPath: path))
            try expectRefused([folder, "-o", path, "--force"], mentioning: "is an input")
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before, "\(name) is unchanged")
        }
        // Another name in the checkpoint's folder is fine.
        let r = try QuantizeProcess.run([folder, "-o", folder + "/model.gtm", "--type", "q8"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func testCharacterDeviceOutputIsRefused() throws {
        let gguf = try copy("gguf/tiny-gemma3-bf16.gguf")
        // A private copy of /dev/null where the test may make one (root), so that a build
        // without the check replaces that copy rather than the system's /dev/null.
        var device = dir + "/null"
        if mknod(device, S_IFCHR | 0o666, dev_t(0x103) /* makedev(1, 3) */) != 0 { device = "/dev/null" }
        try expectRefused([gguf, "-o", device, "--force"], mentioning: "is a character device, not a regular file")
        XCTAssertEqual(fileType(device), S_IFCHR)
        XCTAssertEqual(fileType("/dev/null"), S_IFCHR)
    }

    func testFIFOOutputIsRefused() throws {
        let gguf = try copy("gguf/tiny-gemma3-bf16.gguf")
        let fifo = dir + "/fifo.gtm"
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        try expectRefused([gguf, "-o", fifo, "--force"], mentioning: "is a FIFO, not a regular file")
        XCTAssertEqual(fileType(fifo), S_IFIFO)
    }

    func testDirectoryOutputIsRefused() throws {
        let gguf = try copy("gguf/tiny-gemma3-bf16.gguf")
        let folder = dir + "/folder.gtm"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        try expectRefused([gguf, "-o", folder, "--force"], mentioning: "is a directory, not a regular file")
    }

    func testEmptyOutputPathIsRefused() throws {
        let gguf = try copy("gguf/tiny-gemma3-bf16.gguf")
        try expectRefused([gguf, "-o", ""], mentioning: "the output path (-o) is empty")
    }

    /// What --force is for still works: replacing an earlier output, also through a symlink.
    func testForceStillReplacesARegularFile() throws {
        let gguf = try copy("gguf/tiny-gemma3-bf16.gguf")
        let out = dir + "/m.gtm"
        try Data("old".utf8).write(to: URL(fileURLWithPath: out))
        let r = try QuantizeProcess.run([gguf, "-o", out, "--force", "--type", "q8"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertGreaterThan((try FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0, 1000)
    }

    /// A FIFO as the checkpoint, or as the file to inspect or verify: one error line at once
    /// (reading it used to wait for a writer forever).
    func testFIFOInputIsRefusedAtOnce() throws {
        let fifo = dir + "/model.gguf"
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        for arguments in [[fifo, "-o", dir + "/m.gtm"], ["inspect", fifo], ["verify", fifo]] {
            let p = try QuantizeProcess(arguments)
            let deadline = Date().addingTimeInterval(20)
            while p.process.isRunning && Date() < deadline { usleep(20_000) }
            if p.process.isRunning {
                kill(p.pid, SIGKILL)
                XCTFail("gemma-quantize \(arguments.joined(separator: " ")) still running after 20 s")
            }
            let r = p.wait()
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "one line: \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("not a regular file"), r.stderr)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/m.gtm"))
    }
}
