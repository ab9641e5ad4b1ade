import Foundation
import GemmaTiny
import Hummingbird
import NIOCore

/// An error response in the OpenAI shape:
/// `{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}`.
struct APIError: Error, HTTPResponseError, Sendable {
    var status: HTTPResponse.Status
    var message: String
    var type: String
    var param: String?
    var code: String?
    var headers: HTTPFields = [:]

    init(status: HTTPResponse.Status, message: String, type: String = "invalid_request_error", param: String? = nil,
         code: String? = nil, headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers
    }

    static func badRequest(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(status: .badRequest, message: message, param: param, code: code)
    }

    static func modelNotFound(_ model: String) -> APIError {
        APIError(status: .notFound, message: "The model '\(model)' does not exist", param: "model", code: "model_not_found")
    }

    static func bodyTooLarge(limit: Int) -> APIError {
        APIError(status: .contentTooLarge, message: "The request body is larger than the limit of \(limit) bytes",
                 code: "request_too_large")
    }

    static func queueFull(limit: Int) -> APIError {
        APIError(status: .tooManyRequests,
                 message: "The server is busy: \(limit) requests are already waiting. Retry later.",
                 type: "rate_limit_error", code: "rate_limit_exceeded", headers: [.retryAfter: "1"])
    }

    static var shuttingDown: APIError {
        APIError(status: .serviceUnavailable, message: "The server is shutting down", type: "server_error",
                 code: "shutting_down")
    }

    static func server(_ message: String) -> APIError {
        APIError(status: .internalServerError, message: message, type: "server_error")
    }

    /// The error of a generation stream, as the API reports it.
    static func from(_ error: EngineError, param: String) -> APIError {
        switch error {
        case .promptTooLong:
            return .badRequest(error.description, param: param, code: "context_length_exceeded")
        case .emptyPrompt, .invalidMessages, .inference(.tokenOutOfRange):
            return .badRequest(error.description, param: param)
        case .invalidOptions:
            return .badRequest(error.description)
        case .shutDown, .cancelled:
            return .shuttingDown
        case .noChatTemplate:
            return .badRequest(error.description, param: "messages", code: "no_chat_template")
        case .modelLoad, .tokenizer, .sessionCreation, .inference:
            return .server(error.description)
        }
    }

    struct Body: Encodable {
        struct Inner: Encodable {
            var message: String
            var type: String
            var param: String?
            var code: String?

            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(message, forKey: .message)
                try c.encode(type, forKey: .type)
                try c.encode(param, forKey: .param)  // explicit nulls, as OpenAI sends them
                try c.encode(code, forKey: .code)
            }

            enum CodingKeys: String, CodingKey { case message, type, param, code }
        }

        var error: Inner
    }

    var body: Body { Body(error: .init(message: message, type: type, param: param, code: code)) }

    /// `data: {"error": ...}` for a stream that already sent its headers.
    var jsonData: Data { (try? apiJSONEncoder().encode(body)) ?? Data("{\"error\":{}}".utf8) }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(data: jsonData)))
    }
}

/// Turns every error into an OpenAI-style JSON error response: the API's own errors as they
/// are, Hummingbird's (unknown route, body too large) mapped, anything else a 500. The server
/// never answers with an empty error or a crash.
struct APIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return try error.response(from: request, context: context)
        } catch is NIOTooManyBytesError {
            return try APIError(status: .contentTooLarge, message: "The request body is too large",
                                code: "request_too_large").response(from: request, context: context)
        } catch let error as HTTPError {
            let api: APIError
            switch error.status {
            case .notFound where GemmaServer.allowedMethods(path: request.uri.path) != nil:
                let allow = GemmaServer.allowedMethods(path: request.uri.path)!
                api = APIError(status: .methodNotAllowed, message: "\(request.method) is not allowed on \(request.uri.path): use \(allow)",
                               code: "method_not_allowed", headers: [.allow: allow])
            case .notFound:
                api = APIError(status: .notFound, message: "Unknown request URL: \(request.method) \(request.uri.path)",
                               code: "unknown_url")
            case .contentTooLarge:
                api = APIError(status: .contentTooLarge, message: error.body ?? "The request body is too large",
                               code: "request_too_large")
            default:
                api = APIError(status: error.status, message: error.body ?? error.status.reasonPhrase,
                               type: error.status.code >= 500 ? "server_error" : "invalid_request_error")
            }
            return try api.response(from: request, context: context)
        } catch is CancellationError {
            // The client went away; nobody reads this.
            return try APIError(status: .serviceUnavailable, message: "The request was cancelled", type: "server_error",
                                code: "cancelled").response(from: request, context: context)
        } catch {
            context.logger.error("unexpected error: \(error)")
            return try APIError.server("Internal error: \(error)").response(from: request, context: context)
        }
    }
}
