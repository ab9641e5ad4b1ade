import Foundation
import GemmaConvert
import GemmaTiny
import XCTest

/// `gemma-quantize` interrupted or unable to write: killed with SIGKILL mid-run, the output
/// folder on a full file system, a file-size limit. Each leaves nothing in the output folder
/// and the input unchanged; the failures are one `error:` line and a non-zero exit.
final class ConverterFaultTests: XCTestCase {
    var dir: String!
    var checkpoint: String!

    override func setUpWithError() throws {
        checkpoint = try LargeCheckpoint.path()
        dir = NSTemporaryDirectory() + "gt-fault-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func assertOneLineError(_ r: QuantizeProcess.Output, mentioning fragments: [String], line: UInt = #line) {
        XCTAssertEqual(r.reason, .exit, "exited, not killed by a signal: \(r.stderr)", line: line)
        XCTAssertNotEqual(r.status, 0, line: line)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "one line: \(r.stderr)", line: line)
        XCTAssertTrue(r.stderr.hasPrefix("error: "), r.stderr, line: line)
        for f in fragments { XCTAssertTrue(r.stderr.contains(f), "'\(r.stderr)' should mention \(f)", line: line) }
    }

    func contents(_ folder: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
    }

    /// SIGKILL while the model file is being written: the unnamed file dies with the process,
    /// and the same conversion run again succeeds.
    func testKilledMidRunLeavesNothingAndRerunSucceeds() throws {
        let before = try folderChecksums(checkpoint)
        let output = dir + "/m.gtm"
        // One thread and zstd level 19 keep it busy for seconds.
        let arguments = [checkpoint!, "-o", output, "--type", "q4", "--threads", "1", "--zstd-level", "19"]
        let run = try QuantizeProcess(arguments)
        let written = waitUntilWriting(run, folder: dir, atLeast: 256 << 10, seconds: 120)
        guard let written else {
            let r = run.wait()
            return XCTFail("the conversion ended (status \(r.status)) before it had written 256 KiB: \(r.stderr)")
        }
        XCTAssertTrue(written.link.hasSuffix("(deleted)"), "the output is an unnamed file until complete: \(written.link)")
        kill(run.pid, SIGKILL)
        let killed = run.wait()
        XCTAssertEqual(killed.reason, .uncaughtSignal)
        XCTAssertEqual(killed.status, SIGKILL)

        XCTAssertEqual(try contents(dir), [], "nothing left in the output folder")
        XCTAssertEqual(try folderChecksums(checkpoint), before, "input unchanged")

        let again = try QuantizeProcess.run(arguments)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(try contents(dir), ["m.gtm"])
        XCTAssertNoThrow(try ModelFile(path: output).verify())
        let complete = (try FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        XCTAssertLessThan(written.size, complete, "killed before the end of the file")
        XCTAssertEqual(try folderChecksums(checkpoint), before, "input unchanged")
    }

    /// The output folder on a 2 MiB tmpfs, too small for the ~12 MB file: ENOSPC is one error
    /// line, and the space the partial file took is given back.
    func testFullFileSystemIsOneLineErrorAndLeavesNothing() throws {
        let tmpfs = try SmallTmpfs.mount(bytes: 2 << 20)
        defer { tmpfs.unmount() }
        let before = try folderChecksums(checkpoint)
        let free = tmpfs.availableBytes
        let output = tmpfs.path + "/m.gtm"
        let r = try QuantizeProcess.run([checkpoint, "-o", output, "--type", "bf16", "--no-compress"])
        assertOneLineError(r, mentioning: [output, "No space left on device"])
        XCTAssertEqual(r.stderr.components(separatedBy: "cannot write").count - 1, 1, "said once: \(r.stderr)")
        XCTAssertEqual(try contents(tmpfs.path), [], "nothing left behind")
        XCTAssertEqual(tmpfs.availableBytes, free, "the partial file's space was freed")
        XCTAssertEqual(try folderChecksums(checkpoint), before, "input unchanged")
    }

    /// A file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored so that write fails with EFBIG): an
    /// injected write failure that needs no privileges, so it always runs.
    func testFileSizeLimitIsOneLineErrorAndLeavesNothing() throws {
        let before = try folderChecksums(checkpoint)
        let output = dir + "/m.gtm"
        // 1 or 2 MiB (the shell counts 512- or 1024-byte blocks): far below the ~12 MB output,
        // above the header, metadata and tokenizer written first.
        let r = try QuantizeProcess.run([checkpoint, "-o", output, "--type", "bf16", "--no-compress"],
                                        shellPrelude: "trap '' XFSZ; ulimit -f 2048")
        assertOneLineError(r, mentioning: [output, "File too large"])
        XCTAssertEqual(r.stderr.components(separatedBy: "cannot write").count - 1, 1, "said once: \(r.stderr)")
        XCTAssertEqual(try contents(dir), [], "nothing left behind")
        // A limit smaller than the header, metadata and tokenizer: it fails on the first write.
        let early = try QuantizeProcess.run([checkpoint, "-o", output, "--type", "bf16", "--no-compress"],
                                            shellPrelude: "trap '' XFSZ; ulimit -f 4")
        assertOneLineError(early, mentioning: [output, "File too large"])
        XCTAssertEqual(try contents(dir), [], "nothing left behind")
        XCTAssertEqual(try folderChecksums(checkpoint), before, "input unchanged")
    }

    static let fixture = SyntheticCheckpoint.repositoryRoot + "/fixtures/tiny-gemma"
    static let libraryOptions = ConversionOptions(type: .q8, compression: .never)

    /// The converter as a library, failing to write (a file-size limit of 4 KiB, less than the
    /// header, metadata and tokenizer written first; then of 64 KiB, less than the ~0.2 MB of
    /// tensors): the error names the file and the problem, nothing is left, and no descriptor
    /// of the unnamed file stays open (an embedding process would otherwise hold its disk space
    /// until it exits).
    func testLibraryWriteFailureClosesTheUnnamedFile() throws {
        let output = dir + "/m.gtm"
        for (stage, limit) in [("first write", 4 << 10), ("tensors", 64 << 10)] {
            XCTAssertThrowsError(try withFileSizeLimit(limit) {
                try Converter.convert(checkpoint: Self.fixture, output: output, options: Self.libraryOptions)
            }, stage) { error in
                XCTAssertTrue("\(error)".hasPrefix("cannot write \(output): File too large"), "\(stage): \(error)")
            }
            XCTAssertEqual(openDescriptors(into: dir), [], "\(stage): the unnamed file is still open")
            XCTAssertEqual(try contents(dir), [], stage)
        }
    }

    /// The same on a full file system (a real tmpfs): the unnamed file's space is given back.
    func testLibraryWriteFailureOnFullFileSystemFreesTheSpace() throws {
        let tmpfs = try SmallTmpfs.mount(bytes: 64 << 10)
        defer { tmpfs.unmount() }
        let output = tmpfs.path + "/m.gtm"
        // 4 KiB free, then 64 KiB: failing on the first write, then among the tensors.
        let filler = tmpfs.path + "/filler"
        try Data(count: tmpfs.availableBytes - 4096).write(to: URL(fileURLWithPath: filler))
        for stage in ["first write", "tensors"] {
            let free = tmpfs.availableBytes
            XCTAssertThrowsError(try Converter.convert(checkpoint: Self.fixture, output: output, options: Self.libraryOptions),
                                 stage) { error in
                XCTAssertTrue("\(error)".hasPrefix("cannot write \(output): No space left on device"), "\(stage): \(error)")
            }
            XCTAssertEqual(openDescriptors(into: tmpfs.path), [], "\(stage): the unnamed file is still open")
            XCTAssertEqual(tmpfs.availableBytes, free, "\(stage): its space was not given back")
            XCTAssertEqual(try contents(tmpfs.path).filter { $0 != "filler" }, [], stage)
            try? FileManager.default.removeItem(atPath: filler)  // the second round has all 64 KiB
        }
    }

    /// This process's open descriptors on files in `folder` (their link text).
    func openDescriptors(into folder: String) -> [String] {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0) }
            .filter { $0.hasPrefix(folder + "/") }
    }

    /// Waits until `run` has a file open in `folder` of at least `bytes`; returns the
    /// descriptor's link text (an O_TMPFILE file reads `<folder>/#<inode> (deleted)`) and size,
    /// or nil if the process ended first.
    func waitUntilWriting(_ run: QuantizeProcess, folder: String, atLeast bytes: Int, seconds: Double) -> (link: String, size: Int)? {
        let deadline = Date().addingTimeInterval(seconds)
        let fdDir = "/proc/\(run.pid)/fd"
        while Date() < deadline && run.process.isRunning {
            for fd in (try? FileManager.default.contentsOfDirectory(atPath: fdDir)) ?? [] {
                guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: fdDir + "/" + fd),
                      link.hasPrefix(folder + "/") else { continue }
                var s = stat()
                if stat(fdDir + "/" + fd, &s) == 0, Int(s.st_size) >= bytes { return (link, Int(s.st_size)) }
            }
            usleep(20_000)
        }
        return nil
    }
}
