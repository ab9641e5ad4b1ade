import Foundation
import Hummingbird

/// Which cross-site requests the server accepts (a web page in the user's browser can reach a
/// server on loopback: these rules keep it from using the API).
public struct RequestPolicy: Sendable, Equatable {
    /// Host header values accepted besides loopback names and the bound address (host names or
    /// addresses, without port; "*" accepts any).
    public var allowedHosts: [String]
    /// Origins (`scheme://host[:port]`) that may call the API from a browser: CORS preflights
    /// are answered and responses carry `Access-Control-Allow-Origin` for these only.
    public var corsOrigins: [String]

    public init(allowedHosts: [String] = [], corsOrigins: [String] = []) {
        self.allowedHosts = allowedHosts
        self.corsOrigins = corsOrigins
    }
}

/// Enforces a ``RequestPolicy``: a Host that names neither loopback, the bound address nor an
/// allowed host gets 421 (DNS rebinding); POST bodies must be `application/json` (415), which
/// also keeps plain HTML forms out; CORS preflights get an answer only for allowed origins.
struct RequestPolicyMiddleware<Context: RequestContext>: RouterMiddleware {
    let policy: RequestPolicy
    /// The address the server is bound to (TCP), nil for a Unix socket, where Host means nothing.
    let boundHost: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let boundHost, let host = request.head.authority, !isAllowed(host: host, boundHost: boundHost) {
            throw APIError(status: .misdirectedRequest,
                           message: "Host '\(host)' is not accepted by this server (use --allowed-host to accept it)",
                           code: "host_not_allowed")
        }
        let origin = request.headers[.origin]
        let corsAllowed = origin.map { policy.corsOrigins.contains($0) || policy.corsOrigins.contains("*") } ?? false
        if request.method == .options {
            guard let origin, corsAllowed else {
                throw APIError(status: .forbidden, message: "Cross-origin requests from '\(origin ?? "")' are not allowed (see --cors-origin)",
                               code: "origin_not_allowed")
            }
            return Response(status: .noContent, headers: [
                .accessControlAllowOrigin: origin,
                .accessControlAllowMethods: "GET, POST, OPTIONS",
                .accessControlAllowHeaders: "Content-Type, Authorization",
                .accessControlMaxAge: "600",
                .vary: "Origin",
            ])
        }
        if request.method == .post {
            let type = request.headers[.contentType] ?? ""
            let mediaType = type.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
            guard mediaType == "application/json" else {
                throw APIError(status: .unsupportedMediaType,
                               message: type.isEmpty ? "The request needs 'Content-Type: application/json'"
                                   : "Content-Type '\(type)' is not supported: send 'application/json'",
                               code: "unsupported_media_type")
            }
        }
        var response: Response
        do {
            response = try await next(request, context)
        } catch var error as APIError where corsAllowed {
            // An allowed page reads the error too (a 401 for a wrong key, say), not a CORS failure.
            error.headers[.accessControlAllowOrigin] = origin
            error.headers[.vary] = "Origin"
            throw error
        }
        if let origin, corsAllowed {
            response.headers[.accessControlAllowOrigin] = origin
            response.headers[.vary] = "Origin"
        }
        return response
    }

    /// True for a loopback name or address, the bound address, or an allowed host; any port.
    func isAllowed(host: String, boundHost: String) -> Bool {
        let name = Self.hostName(host)
        if policy.allowedHosts.contains("*") { return true }
        if name == "localhost" || name.hasSuffix(".localhost") || name == "::1" || name.hasPrefix("127.") && name.split(separator: ".").count == 4 {
            return true
        }
        if name == Self.hostName(boundHost) && !["0.0.0.0", "::", ""].contains(name) { return true }
        return policy.allowedHosts.contains { Self.hostName($0) == name }
    }

    /// The host of a Host header value, lowercased, without port or IPv6 brackets.
    static func hostName(_ value: String) -> String {
        var s = value.trimmingCharacters(in: .whitespaces).lowercased()
        if s.hasPrefix("[") {
            if let end = s.firstIndex(of: "]") { return String(s[s.index(after: s.startIndex)..<end]) }
            return s
        }
        if s.filter({ $0 == ":" }).count == 1, let colon = s.firstIndex(of: ":") { s = String(s[..<colon]) }
        if s.hasSuffix(".") { s.removeLast() }
        return s
    }
}
