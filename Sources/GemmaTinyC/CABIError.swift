import CGemmaTiny
import Foundation
import GemmaTiny

/// An error as the C ABI reports it: a status code and a one-line message.
struct CABIError: Error {
    var status: gt_status
    var message: String

    init(_ status: gt_status, _ message: String) {
        self.status = status
        self.message = message
    }

    static func null(_ argument: String) -> CABIError {
        CABIError(GT_ERR_INVALID_ARGUMENT, "\(argument) is NULL")
    }

    /// The engine's errors, with the status that says what kind they are.
    init(_ error: EngineError) {
        let status: gt_status
        switch error {
        case .modelLoad, .tokenizer: status = GT_ERR_MODEL_LOAD
        case .invalidOptions: status = GT_ERR_INVALID_OPTIONS
        case .invalidMessages, .noChatTemplate: status = GT_ERR_CHAT
        case .promptTooLong: status = GT_ERR_PROMPT_TOO_LONG
        case .sessionCreation: status = GT_ERR_SESSION_CREATION
        case .emptyPrompt, .inference, .cancelled, .shutDown: status = GT_ERR_INTERNAL  // .inference: a token id out of range too
        }
        self.init(status, error.description)
    }

    init(any error: any Error) {
        if let e = error as? CABIError {
            self = e
        } else if let e = error as? EngineError {
            self.init(e)
        } else {
            self.init(GT_ERR_INTERNAL, "\(error)")
        }
    }
}

/// What a `gt_error *` points to: made by `report`, freed by `gt_error_free`.
final class ErrorBox {
    let status: gt_status
    /// The message as a C string (owned: freed in deinit).
    let message: UnsafeMutablePointer<CChar>

    init(_ error: CABIError) {
        status = error.status
        message = strdup(error.message) ?? strdup("out of memory")!
    }

    deinit { free(message) }

    static func from(_ pointer: OpaquePointer) -> ErrorBox {
        Unmanaged<ErrorBox>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
    }
}

/// Runs the body of an exported function: GT_OK and `*error = NULL` when it returns, the
/// error's status and a new `gt_error` in `*error` (if `error` is not NULL) when it throws.
func reporting(_ out: UnsafeMutablePointer<OpaquePointer?>?, _ body: () throws -> Void) -> gt_status {
    do {
        try body()
        out?.pointee = nil
        return GT_OK
    } catch {
        let e = CABIError(any: error)
        out?.pointee = OpaquePointer(Unmanaged.passRetained(ErrorBox(e)).toOpaque())
        return e.status
    }
}

/// "" as a C string, for gt_error_message(NULL).
private let emptyCString: StaticString = ""

@_cdecl("gt_error_message")
public func gt_error_message_impl(_ error: OpaquePointer?) -> UnsafePointer<CChar> {
    guard let error else {
        return UnsafeRawPointer(emptyCString.utf8Start).assumingMemoryBound(to: CChar.self)
    }
    return UnsafePointer(ErrorBox.from(error).message)
}

@_cdecl("gt_error_code")
public func gt_error_code_impl(_ error: OpaquePointer?) -> gt_status {
    guard let error else { return GT_OK }
    return ErrorBox.from(error).status
}

@_cdecl("gt_error_free")
public func gt_error_free_impl(_ error: OpaquePointer?) {
    guard let error else { return }
    Unmanaged<ErrorBox>.fromOpaque(UnsafeRawPointer(error)).release()
}
