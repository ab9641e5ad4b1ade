import Foundation
@testable import GemmaTiny
import XCTest

/// Reading a model file into memory at load time (`MappedFile.readIn`, the commands' preload):
/// the pages a cold start would fault in during the first prompt, read before it instead.
final class PreloadTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gt-preload-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// Writes `path` to disk and drops its pages from the page cache (as after a reboot);
    /// returns whether that worked: not on a file system that keeps files only in memory (tmpfs).
    func evict(_ path: String) throws -> Bool {
        let fd = open(path, O_RDONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        XCTAssertEqual(fsync(fd), 0)
        XCTAssertEqual(posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED)), 0)
        let file = try MappedFile(path: path)
        return try XCTUnwrap(file.residentByteCount()) < file.size / 2
    }

    func testReadInBringsEveryPageOfTheFileIntoMemory() throws {
        let path = dir + "/data.bin"
        // Not a whole number of pages or steps: the last partial page counts too.
        let size = 3 * (1 << 20) + 12345
        try Data((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7) }).write(to: URL(fileURLWithPath: path))
        let evicted = try evict(path)
        let file = try MappedFile(path: path)
        if evicted { XCTAssertLessThan(try XCTUnwrap(file.residentByteCount()), size / 2) }
        var reported: [Int] = []
        file.readIn(step: 1 << 20) { reported.append($0) }
        XCTAssertEqual(reported, [1 << 20, 2 << 20, 3 << 20, size], "progress after each step, ending at the size")
        XCTAssertEqual(file.residentByteCount(), size, "every byte in memory after readIn")
        XCTAssertEqual(file.bytes[size - 1], UInt8(truncatingIfNeeded: (size - 1) &* 7), "the bytes are the file's")
    }

    func testResidentBytesOfAFileReadOnceAreItsSize() throws {
        let path = dir + "/small.bin"
        try Data(repeating: 0x5A, count: 10_000).write(to: URL(fileURLWithPath: path))
        let file = try MappedFile(path: path)
        XCTAssertEqual(file.bytes.reduce(0) { $0 &+ Int($1) }, 10_000 * 0x5A)
        XCTAssertEqual(file.residentByteCount(), 10_000)
    }

    // MARK: the commands

    /// The real Gemma 3 270M (q8, about 290 MB): a file larger than what loading it reads, so
    /// that most of a cold file is still on disk when the preload decides.
    func realModel() throws -> String {
        guard let gguf = ProcessInfo.processInfo.environment["GEMMA3_270M_GGUF"], !gguf.isEmpty else {
            throw XCTSkip("set GEMMA3_270M_GGUF to the file scripts/fetch-gemma3-270m.sh prints to run the Gemma 3 270M tests")
        }
        return try ModelFixtures.convertedPath("gemma3-270m", .q8, checkpointPath: gguf)
    }

    func run(_ path: String, _ extra: [String], root: String? = nil) throws -> GemmaTinyCLI.Output {
        try GemmaTinyCLI.run(["run", "-m", path, "-p", "Hello", "--temp", "0", "-n", "4", "--ignore-eos", "--ctx", "256", "-v"] + extra,
                             extraEnvironment: root.map { ["GEMMA_TINY_MEMORY_ROOT": $0] } ?? [:])
    }

    func preloadLines(_ stderr: String) -> [Substring] {
        stderr.split(separator: "\n").filter { $0.hasPrefix("preload: ") }
    }

    func testRunReadsAColdModelInFirstAndGeneratesTheSameText() throws {
        let path = try realModel()
        guard try evict(path) else { throw XCTSkip("the temporary folder is in memory (tmpfs): nothing to read in") }
        let cold = try run(path, [])
        XCTAssertEqual(cold.status, 0, cold.stderr)
        let lines = preloadLines(cold.stderr)
        XCTAssertEqual(lines.count, 1, cold.stderr)
        XCTAssertTrue(lines.first?.contains("of the model from storage in") ?? false, cold.stderr)

        // In memory now: nothing to read.
        let warm = try run(path, [])
        XCTAssertEqual(warm.status, 0, warm.stderr)
        XCTAssertEqual(preloadLines(warm.stderr), [], warm.stderr)
        XCTAssertEqual(warm.stdout, cold.stdout)

        XCTAssertTrue(try evict(path))
        let off = try run(path, ["--no-preload"])
        XCTAssertEqual(off.status, 0, off.stderr)
        XCTAssertEqual(preloadLines(off.stderr), [], "--no-preload: \(off.stderr)")
        XCTAssertEqual(off.stdout, cold.stdout)
    }

    /// A model that does not fit would push its own first pages out while being read: no preload.
    func testNoPreloadWhenTheModelDoesNotFit() throws {
        let path = try realModel()
        guard try evict(path) else { throw XCTSkip("the temporary folder is in memory (tmpfs): nothing to read in") }
        let tight = try run(path, [], root: FakeMemoryRoot.v1(limit: 1 << 20, for: self))
        XCTAssertEqual(tight.status, 0, tight.stderr)
        XCTAssertTrue(tight.stderr.hasPrefix("warning: "), tight.stderr)
        XCTAssertEqual(preloadLines(tight.stderr), [], tight.stderr)
    }
}
