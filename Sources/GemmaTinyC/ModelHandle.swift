import CGemmaTiny
import Dispatch
import GemmaTiny

/// What a `gt_model *` points to: the engine and the generation options it was loaded with.
/// Retained by the caller (until gt_model_free) and by each of its sessions.
final class ModelHandle: @unchecked Sendable {
    let engine: GemmaEngine
    /// Used by generations whose options pointer is NULL.
    let defaults: GenerationOptions

    init(engine: GemmaEngine, defaults: GenerationOptions) {
        self.engine = engine
        self.defaults = defaults
    }

    /// The last reference is gone (no session left): stop the compute thread and wait for it,
    /// so that nothing of the model runs after gt_model_free / gt_session_free returns.
    deinit {
        let engine = self.engine
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            await engine.shutdown()
            done.signal()
        }
        done.wait()
    }

    var pointer: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }

    static func from(_ pointer: OpaquePointer?, _ name: String = "model") throws -> ModelHandle {
        guard let pointer else { throw CABIError.null(name) }
        return Unmanaged<ModelHandle>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
    }
}
