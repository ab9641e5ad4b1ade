/// What can go wrong mapping or writing a file, said the same way for every kind of file: the
/// model file reports it as a `ModelFileError`, the converter as a problem of its input.
public enum FileAccessError: Error, Equatable, CustomStringConvertible, Sendable {
    case cannotOpen(path: String, reason: String)
    case empty(path: String)
    /// A failed write, flush, create or rename; the message names the file and the reason.
    case io(String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason): return "cannot open \(path): \(reason)"
        case .empty(let path): return "\(path) is empty"
        case .io(let what): return what
        }
    }
}
