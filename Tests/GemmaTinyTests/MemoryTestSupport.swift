import Foundation
import XCTest

/// Folders laid out like / (proc/meminfo, proc/self/cgroup, cgroup files) for
/// `MemoryAvailability.read(root:)` and the CLI's GEMMA_TINY_MEMORY_ROOT.
enum FakeMemoryRoot {
    static let gib = 1 << 30, mib = 1 << 20

    /// A temporary root holding `files` (relative path -> text), removed after the test.
    static func make(_ files: [String: String], for test: XCTestCase) throws -> String {
        let root = NSTemporaryDirectory() + "gemma-memory-root-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        for (path, text) in files {
            let url = URL(fileURLWithPath: root).appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: false, encoding: .utf8)
        }
        test.addTeardownBlock { try? FileManager.default.removeItem(atPath: root) }
        return root
    }

    static func meminfo(available: Int) -> String {
        "MemTotal:       24684000 kB\nMemFree:        19000000 kB\nMemAvailable:   \(available / 1024) kB\nBuffers:          120000 kB\n"
    }

    /// A v1 machine with plenty of MemAvailable whose process sits in /job under `limit`.
    static func v1(limit: Int, usage: Int = 0, for test: XCTestCase) throws -> String {
        try make([
            "proc/meminfo": meminfo(available: 16 * gib),
            "proc/self/cgroup": "4:memory:/job\n0::/\n",
            "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
            "sys/fs/cgroup/memory/job/memory.limit_in_bytes": "\(limit)\n",
            "sys/fs/cgroup/memory/job/memory.usage_in_bytes": "\(usage)\n",
        ], for: test)
    }
}

/// A real memory cgroup (v1 or v2) made for a test, removed after it; needs root.
struct RealMemoryCgroup {
    let path: String

    /// The cgroup hierarchy's memory folder, or a skip saying why there is none usable.
    static func base() throws -> (path: String, limitFile: String) {
        guard getuid() == 0 else { throw XCTSkip("needs root to make a memory cgroup") }
        let fm = FileManager.default
        if fm.fileExists(atPath: "/sys/fs/cgroup/memory/memory.limit_in_bytes") {
            return ("/sys/fs/cgroup/memory", "memory.limit_in_bytes")
        }
        if let controllers = try? String(contentsOfFile: "/sys/fs/cgroup/cgroup.controllers", encoding: .utf8),
           controllers.split(whereSeparator: \.isWhitespace).contains("memory") {
            return ("/sys/fs/cgroup", "memory.max")
        }
        throw XCTSkip("no cgroup memory controller (v1 /sys/fs/cgroup/memory or v2 with memory)")
    }

    init(limit: Int, for test: XCTestCase) throws {
        let (base, limitFile) = try Self.base()
        path = base + "/gemma-tiny-test-\(getpid())-\(UUID().uuidString.prefix(8))"
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        } catch {
            throw XCTSkip("cannot create a cgroup at \(path): \(error)")
        }
        let path = self.path
        test.addTeardownBlock {
            for _ in 0..<20 where rmdir(path) != 0 { usleep(100_000) }
        }
        try "\(limit)\n".write(toFile: path + "/" + limitFile, atomically: false, encoding: .utf8)
    }

    /// Runs `executable arguments` inside the cgroup (a shell moves itself in, then execs).
    func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> GemmaTinyCLI.Output {
        try GemmaTinyCLI.run(["-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\"", path, executable] + arguments,
                             executable: "/bin/sh", extraEnvironment: environment)
    }
}
