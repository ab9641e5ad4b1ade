import Hummingbird

/// The API key check: with ``GemmaServerConfiguration/apiKey`` set, every request but
/// `/health` (and CORS preflights, which browsers send without credentials) must carry
/// `Authorization: Bearer KEY`.
public enum APIKeyCheck {
    /// True when `a` and `b` are the same bytes, in a time that depends only on their lengths:
    /// every byte position up to the longer length is compared, whatever the first difference.
    /// (The length of the longer one may show; where the bytes differ does not.)
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt(bitPattern: a.count ^ b.count)
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                for i in 0..<max(a.count, b.count) {
                    // Past the end of the shorter one: 0, already counted as a difference above.
                    let x = i < a.count ? a[i] : 0
                    let y = i < b.count ? b[i] : 0
                    difference |= UInt(x ^ y)
                }
            }
        }
        return difference == 0
    }

    /// The token of an `Authorization: Bearer TOKEN` value (the scheme is case-insensitive);
    /// nil for another scheme or no token.
    static func bearerToken(_ value: String) -> Substring? {
        let trimmed = value.drop { $0 == " " || $0 == "\t" }
        guard let space = trimmed.firstIndex(where: { $0 == " " || $0 == "\t" }),
              trimmed[..<space].lowercased() == "bearer" else { return nil }
        let token = trimmed[space...].drop { $0 == " " || $0 == "\t" }
        return token.isEmpty ? nil : token
    }

    /// Why a request's `Authorization` values do not carry `key`; nil when they do.
    static func failure(authorization values: [String], key: [UInt8]) -> APIError? {
        guard !values.isEmpty else { return .missingAPIKey }
        // One header, one key: a second Authorization header is not a second chance.
        guard values.count == 1, let token = bearerToken(values[0]) else { return .notBearer }
        return constantTimeEqual(Array(token.utf8), key) ? nil : .incorrectAPIKey
    }
}

/// Refuses requests without the right key (401) before their body is read. `/health` is open
/// (monitoring), and so are OPTIONS requests: ``RequestPolicyMiddleware`` answers them (a CORS
/// preflight, or 403) and they reach no endpoint.
struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let key: [UInt8]

    init(key: String) { self.key = Array(key.utf8) }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path == "/health" || request.method == .options { return try await next(request, context) }
        if let failure = APIKeyCheck.failure(authorization: request.headers[values: .authorization], key: key) {
            throw failure
        }
        return try await next(request, context)
    }
}

extension APIError {
    /// The shape OpenAI answers a missing or wrong key with: 401, `invalid_request_error`,
    /// code `invalid_api_key` (plus the `WWW-Authenticate` challenge of RFC 6750).
    static func unauthorized(_ message: String, challenge: String) -> APIError {
        APIError(status: .unauthorized, message: message, code: "invalid_api_key", headers: [.wwwAuthenticate: challenge])
    }

    static var missingAPIKey: APIError {
        .unauthorized("You didn't provide an API key: this server needs 'Authorization: Bearer KEY'",
                      challenge: "Bearer")
    }

    static var notBearer: APIError {
        .unauthorized("The API key must be sent as 'Authorization: Bearer KEY' (one Authorization header, Bearer scheme)",
                      challenge: "Bearer")
    }

    /// The key is not echoed (it could be a password meant for another server).
    static var incorrectAPIKey: APIError {
        .unauthorized("Incorrect API key provided", challenge: #"Bearer error="invalid_token""#)
    }
}
