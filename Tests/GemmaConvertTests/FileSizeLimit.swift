import Foundation

/// Runs `body` with this process's file-size limit (RLIMIT_FSIZE) at `bytes` and SIGXFSZ
/// ignored, so that a write past the limit fails with EFBIG instead of killing the process;
/// restores both afterwards. Needs no privileges. Only for code that writes the one file under
/// test: every file this process writes meanwhile is limited.
func withFileSizeLimit<T>(_ bytes: Int, _ body: () throws -> T) throws -> T {
    let resource = __rlimit_resource_t(RLIMIT_FSIZE.rawValue)
    var saved = rlimit()
    guard getrlimit(resource, &saved) == 0 else { throw FileSizeLimitError.cannotSet(errno) }
    var limited = saved
    limited.rlim_cur = rlim_t(bytes)
    let savedHandler = signal(SIGXFSZ, SIG_IGN)
    defer {
        setrlimit(resource, &saved)
        signal(SIGXFSZ, savedHandler)
    }
    guard setrlimit(resource, &limited) == 0 else { throw FileSizeLimitError.cannotSet(errno) }
    return try body()
}

enum FileSizeLimitError: Error {
    case cannotSet(Int32)
}
