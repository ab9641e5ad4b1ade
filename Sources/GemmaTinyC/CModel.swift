import CGemmaTiny
import Foundation
import GemmaTiny

/// gemmaTinyVersion as a C string that lives as long as the process.
nonisolated(unsafe) private let versionCString: UnsafeMutablePointer<CChar> = strdup(gemmaTinyVersion)!

@_cdecl("gt_version")
public func gt_version_impl() -> UnsafePointer<CChar> {
    UnsafePointer(versionCString)
}

@_cdecl("gt_model_load")
public func gt_model_load_impl(_ path: UnsafePointer<CChar>?, _ options: UnsafePointer<gt_options>?,
                               _ out: UnsafeMutablePointer<OpaquePointer?>?,
                               _ error: UnsafeMutablePointer<OpaquePointer?>?) -> gt_status {
    out?.pointee = nil
    return reporting(error) {
        let path = try utf8String(path, "path")
        guard let out else { throw CABIError.null("out") }
        let call = try CallOptions(options)
        // Loaded on the calling thread (the C caller's, not Swift's cooperative pool).
        let model: GemmaModel
        do throws(ModelError) {
            model = try GemmaModel.load(path: path)
        } catch {
            throw CABIError(EngineError.modelLoad(path: path, error))
        }
        let engine: GemmaEngine
        do {
            engine = try GemmaEngine(model: model, options: .init(threads: call.threads, contextLength: call.contextLength))
        } catch {
            throw CABIError(any: error)
        }
        let handle = ModelHandle(engine: engine, defaults: call.generation)
        out.pointee = OpaquePointer(Unmanaged.passRetained(handle).toOpaque())
    }
}

@_cdecl("gt_model_free")
public func gt_model_free_impl(_ model: OpaquePointer?) {
    guard let model else { return }
    Unmanaged<ModelHandle>.fromOpaque(UnsafeRawPointer(model)).release()
}

@_cdecl("gt_model_context_length")
public func gt_model_context_length_impl(_ model: OpaquePointer?) -> Int {
    guard let handle = try? ModelHandle.from(model) else { return 0 }
    return handle.engine.defaultContextLength
}

@_cdecl("gt_tokenize")
public func gt_tokenize_impl(_ model: OpaquePointer?, _ text: UnsafePointer<CChar>?, _ addBos: Int32,
                             _ out: UnsafeMutablePointer<Int32>?, _ capacity: Int,
                             _ nOut: UnsafeMutablePointer<Int>?,
                             _ error: UnsafeMutablePointer<OpaquePointer?>?) -> gt_status {
    reporting(error) {
        let handle = try ModelHandle.from(model)
        let text = try utf8String(text, "text")
        guard let nOut else { throw CABIError.null("n_out") }
        let tokenizer = handle.engine.tokenizer
        var ids = addBos != 0 && tokenizer.bosId >= 0 ? [tokenizer.bosId] : []
        ids += tokenizer.encode(text)
        nOut.pointee = ids.count
        // A size_t above Int.max (SIZE_MAX: "big enough") arrives negative: it is no limit.
        guard capacity < 0 || ids.count <= capacity else {
            throw CABIError(GT_ERR_BUFFER_TOO_SMALL, "the text is \(ids.count) tokens, more than the capacity of out (\(capacity))")
        }
        guard let out else {
            if ids.isEmpty { return }
            throw CABIError.null("out")
        }
        for (i, id) in ids.enumerated() { out[i] = Int32(id) }
    }
}
