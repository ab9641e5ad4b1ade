import Foundation

public func printError(_ message: String) {
    writeErr("error: \(visibleControlCharacters(message))\n")
}

/// `text` with its control characters (newlines, tabs, terminal escape sequences; C0, DEL and
/// C1) written as visible escapes: an error may quote bytes of an untrusted model file, and must
/// stay one line that cannot drive the terminal.
func visibleControlCharacters(_ text: String) -> String {
    var out = String.UnicodeScalarView()
    for scalar in text.unicodeScalars {
        switch scalar.value {
        case 0x0A: out.append(contentsOf: #"\n"#.unicodeScalars)
        case 0x09: out.append(contentsOf: #"\t"#.unicodeScalars)
        case 0..<0x20, 0x7F..<0xA0: out.append(contentsOf: "\\u{\(String(scalar.value, radix: 16))}".unicodeScalars)
        default: out.append(scalar)
        }
    }
    return String(out)
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
                // A reader that went away (`| head`) is not an error; a full disk or an I/O
                // error on stdout is, reported when the command ends (`runCommandLine`).
                if fd == STDOUT_FILENO && errno != EPIPE { StandardOutputFailure.record(errno) }
                return
            }
            done += n
        }
    }
}

/// The first error (errno) a write to standard output met, other than a closed pipe.
enum StandardOutputFailure {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var first: Int32 = 0

    static func record(_ code: Int32) {
        lock.withLock { if first == 0 { first = code } }
    }

    /// Why standard output lost text, if it did: the writes above, or `print`'s buffered
    /// stream, flushed here.
    static func check() -> String? {
        if fflush(nil) != 0 && errno != EPIPE { record(errno) }  // every stream; stdout is the one written
        let code = lock.withLock { first }
        return code == 0 ? nil : String(cString: strerror(code))
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
