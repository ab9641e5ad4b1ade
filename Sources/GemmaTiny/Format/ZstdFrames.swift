import CZstd

/// Compressed tensor data is a sequence of independent zstd frames, each holding at most
/// `frameSize` bytes of the tensor and recording its content size and an XXH64-based content
/// checksum. Independent frames let the converter compress in parallel and the runtime unpack
/// in bounded memory.
public enum ZstdFrames {
    public static let frameSize = 4 << 20

    /// The most bytes a frame of `count` uncompressed bytes can take.
    public static func bound(_ count: Int) -> Int { ZSTD_compressBound(count) }

    /// Compresses one chunk (at most `frameSize` bytes) into a single frame.
    public static func compressFrame(_ src: UnsafeRawBufferPointer, level: Int) throws(ModelFileError) -> [UInt8] {
        try Compressor(level: level).compressFrame(src)
    }

    /// A reusable compression context (creating one per frame is wasteful). Not thread-safe:
    /// one per worker.
    public final class Compressor {
        private let cctx: OpaquePointer

        public init(level: Int) throws(ModelFileError) {
            guard let cctx = ZSTD_createCCtx() else { throw .io("zstd: cannot create a compression context") }
            self.cctx = cctx
            ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, Int32(level))
            ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1)
            ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1)
        }

        deinit { ZSTD_freeCCtx(cctx) }

        /// Compresses `src` (at most `frameSize` bytes) into `dst`, which must hold at least
        /// `ZstdFrames.bound(src.count)` bytes; returns the frame's length.
        public func compressFrame(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer) throws(ModelFileError) -> Int {
            precondition(src.count <= ZstdFrames.frameSize && dst.count >= ZstdFrames.bound(src.count))
            let n = ZSTD_compress2(cctx, dst.baseAddress, dst.count, src.baseAddress, src.count)
            guard ZSTD_isError(n) == 0 else { throw .io("zstd: \(String(cString: ZSTD_getErrorName(n)))") }
            return n
        }

        public func compressFrame(_ src: UnsafeRawBufferPointer) throws(ModelFileError) -> [UInt8] {
            precondition(src.count <= ZstdFrames.frameSize)
            let bound = ZSTD_compressBound(src.count)
            var out = [UInt8](repeating: 0, count: bound)
            let n = out.withUnsafeMutableBytes { dst in
                ZSTD_compress2(cctx, dst.baseAddress, bound, src.baseAddress, src.count)
            }
            guard ZSTD_isError(n) == 0 else { throw .io("zstd: \(String(cString: ZSTD_getErrorName(n)))") }
            out.removeSubrange(n...)
            return out
        }
    }

    /// Walks the frames of `stored`, checking each frame's bounds and declared size before use.
    /// `body` receives each frame and the offset in the decompressed tensor where it belongs.
    static func forEachFrame(_ stored: UnsafeRawBufferPointer, tensor: String,
                             _ body: (UnsafeRawBufferPointer, Int) throws(ModelFileError) -> Void) throws(ModelFileError) {
        var position = 0
        var outOffset = 0
        while position < stored.count {
            let rest = UnsafeRawBufferPointer(rebasing: stored[position...])
            let frameLength = ZSTD_findFrameCompressedSize(rest.baseAddress, rest.count)
            guard ZSTD_isError(frameLength) == 0, frameLength > 0, frameLength <= rest.count else {
                throw .decompression(tensor: tensor, reason: "malformed zstd frame at byte \(position)")
            }
            let content = ZSTD_getFrameContentSize(rest.baseAddress, rest.count)
            guard content != ZSTD_CONTENTSIZE_UNKNOWN, content != ZSTD_CONTENTSIZE_ERROR, content <= UInt64(frameSize) else {
                throw .decompression(tensor: tensor, reason: "zstd frame at byte \(position) has no valid content size")
            }
            try body(UnsafeRawBufferPointer(rebasing: rest[..<frameLength]), outOffset)
            outOffset += Int(content)
            position += frameLength
        }
    }

    /// Decompresses all frames into `dst`, which must be exactly the tensor's length.
    static func decompress(_ stored: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer, tensor: String) throws(ModelFileError) {
        guard let dctx = ZSTD_createDCtx() else { throw .io("zstd: cannot create a decompression context") }
        defer { ZSTD_freeDCtx(dctx) }
        var produced = 0
        try forEachFrame(stored, tensor: tensor) { (frame, offset) throws(ModelFileError) in
            let content = Int(ZSTD_getFrameContentSize(frame.baseAddress, frame.count))
            guard offset + content <= dst.count else {
                throw .decompression(tensor: tensor, reason: "frames hold more than the tensor's \(dst.count) bytes")
            }
            let n = ZSTD_decompressDCtx(dctx, dst.baseAddress! + offset, content, frame.baseAddress, frame.count)
            guard ZSTD_isError(n) == 0, n == content else {
                let why = ZSTD_isError(n) != 0 ? String(cString: ZSTD_getErrorName(n)) : "short frame"
                throw .decompression(tensor: tensor, reason: why)
            }
            produced = offset + content
        }
        guard produced == dst.count else {
            throw .decompression(tensor: tensor, reason: "frames hold \(produced) bytes, the tensor needs \(dst.count)")
        }
    }
}
