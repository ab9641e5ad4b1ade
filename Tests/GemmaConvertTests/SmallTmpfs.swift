import Foundation
import XCTest

/// A real, small file system (tmpfs) mounted on a new temporary folder, for out-of-space
/// tests. Mounting needs root (CAP_SYS_ADMIN); where it is not permitted, `mount` throws
/// `XCTSkip` saying so.
final class SmallTmpfs {
    let path: String

    private init(path: String) { self.path = path }

    /// Mounts a tmpfs of `bytes` (rounded up to pages by the kernel).
    static func mount(bytes: Int) throws -> SmallTmpfs {
        let path = NSTemporaryDirectory() + "gt-tmpfs-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let result = try command("/bin/mount", ["-t", "tmpfs", "-o", "size=\(bytes)", "tmpfs", path])
        guard result.status == 0 else {
            try? FileManager.default.removeItem(atPath: path)
            throw XCTSkip("cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): "
                          + (result.stderr.split(separator: "\n").first.map(String.init) ?? "mount failed"))
        }
        return SmallTmpfs(path: path)
    }

    /// Free bytes, as an unprivileged writer sees them.
    var availableBytes: Int {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return -1 }
        return Int(s.f_bavail) * Int(s.f_frsize)
    }

    /// Unmounts it; lazily (detached now, freed when the last file on it closes) if it is busy.
    func unmount() {
        if (try? Self.command("/bin/umount", [path]))?.status != 0 {
            _ = try? Self.command("/bin/umount", ["-l", path])
        }
        try? FileManager.default.removeItem(atPath: path)
    }

    private static func command(_ executable: String, _ arguments: [String]) throws -> (status: Int32, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let message = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: message, as: UTF8.self))
    }
}
