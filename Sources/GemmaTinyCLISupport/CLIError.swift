/// Errors the commands report as `error: <message>`.
public enum CLIError: Error, CustomStringConvertible {
    case message(String)
    /// Exit with this status without printing anything more.
    case silent(Int32)

    public var description: String {
        switch self {
        case .message(let m): return m
        case .silent(let s): return "exit \(s)"
        }
    }
}
