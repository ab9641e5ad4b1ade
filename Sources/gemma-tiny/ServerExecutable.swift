import Foundation

/// Where `gemma-tiny serve` finds the server executable: beside the running gemma-tiny (its real
/// path, so a symlink such as /usr/local/bin/gemma-tiny still finds its siblings), else on PATH.
enum ServerExecutable {
    static let name = "gemma-tiny-serve"

    static let buildHint = "build it with `swift build -c release --package-path server` (Swift 6.2+; for a board without Swift, `scripts/dist.sh --server aarch64` on the desktop) and put \(name) beside gemma-tiny"

    static func find() -> String? {
        if let directory = ownDirectory() {
            let beside = directory + "/" + name
            if isExecutableFile(beside) { return beside }
        }
        return onPath()
    }

    /// The folder of the running executable, symlinks resolved.
    static func ownDirectory() -> String? {
        guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
        return URL(fileURLWithPath: exe).deletingLastPathComponent().path
    }

    static func onPath() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for entry in path.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (entry.isEmpty ? "." : String(entry)) + "/" + name
            if isExecutableFile(candidate) { return candidate }
        }
        return nil
    }

    /// An executable regular file (not a directory of that name).
    private static func isExecutableFile(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
            && FileManager.default.isExecutableFile(atPath: path)
    }
}
