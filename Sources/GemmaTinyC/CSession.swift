import CGemmaTiny
import GemmaTiny

@_cdecl("gt_session_new")
public func gt_session_new_impl(_ model: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?,
                                _ error: UnsafeMutablePointer<OpaquePointer?>?) -> gt_status {
    out?.pointee = nil
    return reporting(error) {
        let handle = try ModelHandle.from(model)
        guard let out else { throw CABIError.null("out") }
        let session: GemmaSession
        do {
            session = try handle.engine.makeSession()
        } catch {
            throw CABIError(any: error)
        }
        let sessionHandle = SessionHandle(model: handle, session: session)
        out.pointee = OpaquePointer(Unmanaged.passRetained(sessionHandle).toOpaque())
    }
}

@_cdecl("gt_session_free")
public func gt_session_free_impl(_ session: OpaquePointer?) {
    guard let session else { return }
    Unmanaged<SessionHandle>.fromOpaque(UnsafeRawPointer(session)).release()
}

@_cdecl("gt_session_cancel")
public func gt_session_cancel_impl(_ session: OpaquePointer?) {
    (try? SessionHandle.from(session))?.cancel()
}

@_cdecl("gt_session_last_result")
public func gt_session_last_result_impl(_ session: OpaquePointer?, _ out: UnsafeMutablePointer<gt_result>?) -> gt_status {
    guard let handle = try? SessionHandle.from(session), let out else { return GT_ERR_INVALID_ARGUMENT }
    out.pointee = handle.lastResult
    return GT_OK
}
