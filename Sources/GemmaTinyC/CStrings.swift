import CGemmaTiny
import Foundation

/// A NUL-terminated C string that must be valid UTF-8; `name` says which argument it is.
func utf8String(_ pointer: UnsafePointer<CChar>?, _ name: String) throws -> String {
    guard let pointer else { throw CABIError.null(name) }
    let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(pointer).assumingMemoryBound(to: UInt8.self),
                                    count: strlen(pointer))
    guard let string = String(validating: bytes, as: UTF8.self) else {
        throw CABIError(GT_ERR_INVALID_ARGUMENT, "\(name) is not valid UTF-8")
    }
    return string
}
