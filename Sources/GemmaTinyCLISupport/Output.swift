import Foundation

public func printError(_ message: String) {
    writeErr("error: \(message)\n")
}

public func printNote(_ message: String) {
    writeErr("\(message)\n")
}

/// Writes straight to stdout (no buffering), so text appears as it is generated.
public func writeOut(_ text: String) { writeAll(STDOUT_FILENO, text) }

public func writeErr(_ text: String) { writeAll(STDERR_FILENO, text) }

private func writeAll(_ fd: Int32, _ text: String) {
    var text = text
    text.withUTF8 { buffer in
        var done = 0
        while done < buffer.count {
            let n = write(fd, buffer.baseAddress! + done, buffer.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                return  // closed pipe etc.: nothing useful to do
            }
            done += n
        }
    }
}

public func formatBytes(_ n: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n)
    var u = 0
    while v >= 1024 && u < units.count - 1 {
        v /= 1024
        u += 1
    }
    return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
}

/// Monotonic seconds, for measuring durations.
public func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
