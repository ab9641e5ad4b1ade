import CZstd
import Foundation
import GemmaKernels

/// Opens a model file so that its tensors can be mapped.
///
/// An uncompressed file is used as it is. So is a file whose compressed tensors are a small part
/// of it (what `gemma-quantize` writes by default: only the tensors zstd shrinks, usually the
/// norms): those few are decompressed into memory and the rest is mapped. A file that is mostly
/// compressed is unpacked once, tensor by tensor, into an uncompressed sibling `<file>.unpacked`
/// (written atomically, tied to the compressed file by its length and header checksum) and that
/// sibling is mapped; later starts map the sibling at once. Where the folder is read-only, or
/// when asked, the compressed tensors are decompressed into anonymous memory instead.
public enum ModelLoader {
    public enum UnpackMode: String, Sendable, CaseIterable {
        /// Unpack to `<file>.unpacked` beside the file (falls back to memory if that fails).
        case sibling
        /// Decompress the compressed tensors into anonymous memory on every start.
        case memory
    }

    /// A file whose compressed tensors hold at most this share of its tensor bytes has them
    /// decompressed into memory at every start, without a sibling (a copy of the whole model on
    /// disk would cost far more than the memory).
    public static let inMemoryShare = 1.0 / 16

    /// Whether `open` decompresses `file`'s compressed tensors into memory (rather than into a
    /// sibling file, or not at all for an uncompressed file).
    public static func decompressesIntoMemory(_ file: ModelFile, mode: UnpackMode) -> Bool {
        let compressed = file.compressedTensorBytes
        guard compressed > 0 else { return false }
        return mode == .memory || Double(compressed) <= inMemoryShare * Double(file.tensorBytes)
    }

    public struct Progress: Sendable {
        public var tensorIndex: Int
        public var tensorCount: Int
        public var bytesDone: Int
        public var bytesTotal: Int
    }

    public static func siblingPath(for path: String) -> String { path + ".unpacked" }

    /// - Parameters:
    ///   - headerCheck: run on the opened file (header and tensor table) before anything is
    ///     unpacked or mapped; a warning it returns goes to `notice` (`GemmaModel.load` checks
    ///     the memory available here, with `MemoryFit`).
    ///   - notice: one-line messages for the user (what is being unpacked, fallbacks, the
    ///     memory warning).
    ///   - progress: called as tensors are unpacked.
    public static func open(path: String, unpack mode: UnpackMode = .sibling, headerCheck: (ModelFile, UnpackMode) -> String? = { _, _ in nil },
                            notice: (String) -> Void = { _ in },
                            progress: (Progress) -> Void = { _ in }) throws(ModelFileError) -> ModelFile {
        let file = try ModelFile(path: path)
        if let warning = headerCheck(file, mode) { notice(warning) }
        guard file.isCompressed else { return file }
        if decompressesIntoMemory(file, mode: mode) {
            if mode == .memory { notice("decompressing \(path) into memory") }
            return try ModelFile(decompressingIntoMemory: file)
        }
        let sibling = siblingPath(for: path)
        if let existing = try? ModelFile(path: sibling), isUnpacked(existing, of: file) {
            return existing
        }
        notice("unpacking \(path) to \(sibling) (once; later starts map it directly; a file converted with gemma-quantize's default --compress auto is mapped without a copy)")
        do {
            try unpack(file, to: sibling, progress: progress)
        } catch let error {
            if case .checksumMismatch = error { throw error }
            if case .decompression = error { throw error }
            notice("cannot write \(sibling) (\(error)); decompressing into memory instead")
            return try ModelFile(decompressingIntoMemory: file)
        }
        let unpacked = try ModelFile(path: sibling)
        guard isUnpacked(unpacked, of: file) else { throw .io("\(sibling) does not match \(path) after unpacking") }
        return unpacked
    }

    static func isUnpacked(_ candidate: ModelFile, of source: ModelFile) -> Bool {
        !candidate.isCompressed
            && candidate.metadata.unpackedFrom == UnpackedSource(fileLength: source.fileSize, headerChecksum: source.headerChecksum)
            && candidate.tensors.count == source.tensors.count
    }

    /// Streams every tensor of `source` into an uncompressed file at `destination`. Peak memory
    /// is one zstd frame (4 MiB), whatever the model's size. Checksums are verified on the way.
    public static func unpack(_ source: ModelFile, to destination: String,
                              progress: (Progress) -> Void = { _ in }) throws(ModelFileError) {
        var metadata = source.metadata
        metadata.unpackedFrom = UnpackedSource(fileLength: source.fileSize, headerChecksum: source.headerChecksum)
        let writer = try ModelFileWriter(destination: destination, metadata: metadata,
                                         vocabulary: source.vocabulary, overwrite: true)
        guard let dctx = ZSTD_createDCtx() else { throw .io("zstd: cannot create a decompression context") }
        defer { ZSTD_freeDCtx(dctx) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: ZstdFrames.frameSize, alignment: 64)
        defer { buffer.deallocate() }
        let total = source.tensorBytes
        var done = 0
        for (i, t) in source.tensors.enumerated() {
            try writer.beginTensor(name: t.name, type: t.type, shape: t.shape, compression: .none)
            var hash = gt_xxh64_state()
            gt_xxh64_reset(&hash, 0)
            switch t.compression {
            case .none:
                let bytes = source.storedBytes(t)
                gt_xxh64_update(&hash, bytes.baseAddress, bytes.count)
                try writer.append(bytes)
            case .zstd:
                var produced = 0
                try ZstdFrames.forEachFrame(source.storedBytes(t), tensor: t.name) { (frame, offset) throws(ModelFileError) in
                    let content = Int(ZSTD_getFrameContentSize(frame.baseAddress, frame.count))
                    guard offset + content <= t.length else {
                        throw .decompression(tensor: t.name, reason: "frames hold more than the tensor's \(t.length) bytes")
                    }
                    let n = ZSTD_decompressDCtx(dctx, buffer.baseAddress, content, frame.baseAddress, frame.count)
                    guard ZSTD_isError(n) == 0, n == content else {
                        throw .decompression(tensor: t.name, reason: ZSTD_isError(n) != 0 ? String(cString: ZSTD_getErrorName(n)) : "short frame")
                    }
                    let chunk = UnsafeRawBufferPointer(rebasing: buffer[..<content])
                    gt_xxh64_update(&hash, chunk.baseAddress, chunk.count)
                    try writer.append(chunk)
                    produced = offset + content
                    progress(Progress(tensorIndex: i, tensorCount: source.tensors.count, bytesDone: done + produced, bytesTotal: total))
                }
                guard produced == t.length else {
                    throw .decompression(tensor: t.name, reason: "frames hold \(produced) bytes, the tensor needs \(t.length)")
                }
            }
            guard gt_xxh64_digest(&hash) == t.checksum else { throw .checksumMismatch(tensor: t.name) }
            try writer.endTensor(length: t.length, checksum: t.checksum)
            done += t.length
            progress(Progress(tensorIndex: i + 1, tensorCount: source.tensors.count, bytesDone: done, bytesTotal: total))
        }
        try writer.finish()
    }
}
