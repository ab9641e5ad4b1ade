import ArgumentParser

/// The server's API key: `--api-key`, else the `GEMMA_TINY_API_KEY` environment variable (which
/// `ps` does not show); nil when neither is set. An empty key, or one that cannot travel in an
/// HTTP header, is a usage error: a server meant to be locked must not start open.
enum APIKeyOption {
    static let environmentVariable = "GEMMA_TINY_API_KEY"

    static func resolve(flag: String?, environment: [String: String]) throws -> String? {
        if let flag { return try checked(flag, name: "--api-key") }
        if let value = environment[environmentVariable] { return try checked(value, name: environmentVariable) }
        return nil
    }

    private static func checked(_ key: String, name: String) throws -> String {
        if key.isEmpty {
            throw ValidationError(name == "--api-key" ? "--api-key must not be empty"
                                  : "\(name) is set but empty; give it a key or unset it")
        }
        // Visible ASCII: the characters a client can send in `Authorization: Bearer KEY` as
        // they are (header values lose surrounding spaces, and other bytes are not portable).
        guard key.utf8.allSatisfy({ (0x21...0x7e).contains($0) }) else {
            throw ValidationError("\(name) must be printable ASCII without spaces (it is sent in an HTTP header)")
        }
        return key
    }
}
