import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The file of a Unix domain socket the server listens on: checked before binding, removed at
/// exit only if it is still the one this server made.
enum UnixSocketPath {
    /// The longest path `sockaddr_un` holds (107 bytes on Linux), without its terminating zero.
    static let maxLength = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// Before binding: the path fits, and nothing is at the path but, at most, a stale socket
    /// (one nobody answers on), which is removed. A live server's socket is never taken over.
    static func prepare(_ path: String) throws {
        guard path.utf8.count <= maxLength else {
            throw ServerError("the socket path \(path) is \(path.utf8.count) bytes long; the limit is \(maxLength)")
        }
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else {
            throw ServerError("\(path) exists and is not a socket; refusing to replace it")
        }
        if try isAnswering(path) {
            throw ServerError("another server is listening on \(path); refusing to take over its socket")
        }
        unlink(path)
    }

    /// Connects to the socket: true if something accepts (or its backlog is full), false if
    /// nobody listens (a socket file left behind by a process that ended).
    static func isAnswering(_ path: String) throws -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ServerError("cannot check \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc == 0 { return true }
        switch errno {
        case ECONNREFUSED, ENOENT: return false
        case EAGAIN, EINPROGRESS: return true  // listening, backlog full
        case let e: throw ServerError("cannot check whether \(path) is in use: \(String(cString: strerror(e)))")
        }
    }

    /// The socket file's device and inode (nil if there is none).
    static func identity(_ path: String) -> [UInt64]? {
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFSOCK else { return nil }
        return [UInt64(st.st_dev), UInt64(st.st_ino)]
    }

    /// Removes the socket file if it is still the one with `identity` (another server may have
    /// replaced it since, after this one stopped answering).
    static func remove(_ path: String, ifStill identity: [UInt64]?) {
        guard let identity, Self.identity(path) == identity else { return }
        unlink(path)
    }
}
