import Foundation

/// The most bytes a text input (a prompt, a text to score, a JSON schema) may have: far more
/// than any context holds, and a bound for a path such as /dev/zero that never ends.
public let maximumInputBytes = 256 << 20

/// The bytes of a text input: the file at `path` (a regular file, or a pipe such as `<(...)` or
/// /dev/stdin), or standard input when `path` is nil or "-". Whatever goes wrong (no such file,
/// a directory, closed standard input, a read error, more than `maximumInputBytes`) is one
/// `cannot read NAME: why` error (NAME: `label`, or the path, or "standard input").
public func readInput(_ path: String?, label: String? = nil) throws -> Data {
    let fromStdin = path == nil || path == "-"
    let name = label ?? (fromStdin ? "standard input" : path!)
    func failure(_ why: String) -> CLIError { .message("cannot read \(name): \(why)") }
    func reason(_ code: Int32) -> String {
        switch code {
        case ENOENT: return "no such file"
        case EACCES: return "permission denied"
        case EISDIR: return "is a directory"
        default: return String(cString: strerror(code))
        }
    }
    let fd = fromStdin ? STDIN_FILENO : open(path!, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw failure(reason(errno)) }
    defer { if !fromStdin { close(fd) } }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw failure(reason(errno)) }
    if (st.st_mode & S_IFMT) == S_IFDIR { throw failure(reason(EISDIR)) }
    var data = Data()
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n == 0 { return data }
        if n < 0 {
            if errno == EINTR { continue }
            throw failure(reason(errno))
        }
        guard data.count + n <= maximumInputBytes else { throw failure("more than \(maximumInputBytes >> 20) MiB") }
        data.append(chunk, count: n)
    }
}
