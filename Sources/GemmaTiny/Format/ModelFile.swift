import Foundation
import GemmaKernels

/// An opened model file: header, metadata, tokenizer vocabulary and tensor table, all validated
/// before any tensor byte is touched.
///
/// Tensor bytes come from the file's own mapping (every uncompressed tensor), or from an
/// anonymous region holding the decompressed copies of the compressed ones (`ModelLoader`, for
/// a file whose compressed tensors are few, or in its in-memory mode).
public final class ModelFile: @unchecked Sendable {
    public let path: String
    public let header: FileHeader
    public let metadata: ModelMetadata
    public let vocabulary: TokenizerVocabulary
    /// Tensors in file order.
    public let tensors: [TensorInfo]
    private let index: [String: Int]
    private let mapping: MappedFile
    /// For each tensor, the base its offset is relative to: the mapped file's data section, or
    /// `ownedData` for a decompressed copy.
    private let bases: [UnsafeRawPointer]
    private let ownedData: AnonymousMemory?

    public init(path: String) throws(ModelFileError) {
        let mapping: MappedFile
        do {
            mapping = try MappedFile(path: path)
        } catch {
            if ForeignModelFormat.isCheckpointFolder(path) { throw .foreignFormat(path: path, format: .huggingFaceFolder) }
            throw ModelFileError(error)
        }
        let bytes = mapping.bytes
        let header = try FileHeader.decode(bytes, path: path)
        func section(_ r: Range<Int>) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[r]) }

        let metadata: ModelMetadata
        do {
            metadata = try JSONDecoder().decode(ModelMetadata.self, from: Data(section(header.metadata)))
        } catch let error as ConfigurationError {
            throw ModelFileError(error)  // an architecture this build does not run (ModelArchitecture's decoder)
        } catch {
            throw .invalidMetadata(MetadataDecodingProblem.describe(error, json: Data(section(header.metadata))))
        }
        do { try metadata.config.validate() } catch { throw ModelFileError(error) }
        let vocabulary = try TokenizerVocabulary.decode(section(header.tokenizer))
        if let problem = metadata.tokenizer.idProblem(vocabularyCount: vocabulary.count) { throw .invalidTokenizer(problem) }
        let tensors = try TensorTableCodec.decode(section(header.tensorTable), dataLength: header.data.count)
        if let t = tensors.first(where: { FileHeader.version(for: $0.type) > header.version }) {
            throw .invalidTensorTable("\(t.name): storage type \(t.type) needs format version \(FileHeader.version(for: t.type)), the file says \(header.version)")
        }

        self.path = path
        self.header = header
        self.metadata = metadata
        self.vocabulary = vocabulary
        self.tensors = tensors
        self.index = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.name, $0) })
        self.mapping = mapping
        self.bases = Array(repeating: UnsafeRawPointer(bytes.baseAddress! + header.data.lowerBound), count: tensors.count)
        self.ownedData = nil
    }

    /// `source` with its compressed tensors decompressed into anonymous memory; its uncompressed
    /// tensors stay where they are, in the mapped file. Verifies the checksum of every tensor it
    /// decompresses.
    init(decompressingIntoMemory source: ModelFile) throws(ModelFileError) {
        // Lay the compressed tensors out one after another in the new region.
        var tensors = source.tensors
        var offset = 0
        for i in tensors.indices where tensors[i].compression != .none {
            offset = alignUp(offset, FileHeader.tensorAlignment)
            tensors[i].offset = offset
            tensors[i].storedLength = tensors[i].length
            tensors[i].storedChecksum = tensors[i].checksum
            tensors[i].compression = .none
            offset += tensors[i].length
        }
        let memory = offset > 0 ? try AnonymousMemory(size: offset) : nil
        var bases = source.bases
        if let memory {
            for i in tensors.indices where source.tensors[i].compression != .none {
                let target = tensors[i]
                try source.unpack(source.tensors[i], into: UnsafeMutableRawBufferPointer(start: memory.base + target.offset, count: target.length))
                bases[i] = UnsafeRawPointer(memory.base)
            }
        }
        path = source.path
        header = source.header
        metadata = source.metadata
        vocabulary = source.vocabulary
        self.tensors = tensors
        self.bases = bases
        index = source.index
        mapping = source.mapping
        ownedData = memory
    }

    public var isCompressed: Bool { tensors.contains { $0.compression != .none } }

    /// Uncompressed bytes of all tensors.
    public var tensorBytes: Int { tensors.reduce(0) { $0 + $1.length } }

    /// Uncompressed bytes of the compressed tensors: what unpacking them produces.
    public var compressedTensorBytes: Int { tensors.reduce(0) { $0 + ($1.compression == .none ? 0 : $1.length) } }

    /// Bytes of anonymous memory holding decompressed tensors (0 when every tensor is mapped
    /// from the file).
    public var decompressedBytes: Int { ownedData?.size ?? 0 }

    public func tensor(_ name: String) -> TensorInfo? { index[name].map { tensors[$0] } }

    /// The bytes as stored in the file (compressed or not).
    public func storedBytes(_ t: TensorInfo) -> UnsafeRawBufferPointer {
        guard let i = index[t.name] else { preconditionFailure("\(t.name) is not a tensor of \(path)") }
        return UnsafeRawBufferPointer(start: bases[i] + t.offset, count: t.storedLength)
    }

    /// The tensor's bytes, ready for the kernels. Throws for a compressed tensor.
    public func data(_ t: TensorInfo) throws(ModelFileError) -> UnsafeRawBufferPointer {
        guard t.compression == .none else { throw .compressed(tensor: t.name) }
        return storedBytes(t)
    }

    /// Writes the uncompressed bytes of `t` into `dst` (exactly `t.length` bytes), checking the
    /// checksum of the result.
    public func unpack(_ t: TensorInfo, into dst: UnsafeMutableRawBufferPointer) throws(ModelFileError) {
        precondition(dst.count == t.length)
        switch t.compression {
        case .none:
            dst.copyMemory(from: storedBytes(t))
        case .zstd:
            try ZstdFrames.decompress(storedBytes(t), into: dst, tensor: t.name)
        }
        guard gt_xxh64(dst.baseAddress, dst.count, 0) == t.checksum else { throw .checksumMismatch(tensor: t.name) }
    }

    /// Checks every tensor's stored checksum (and, for compressed tensors, the checksum of the
    /// decompressed bytes). `progress` is called after each tensor.
    public func verify(progress: (Int, TensorInfo) -> Void = { _, _ in }) throws(ModelFileError) {
        var scratch: [UInt8] = []
        for (i, t) in tensors.enumerated() {
            let stored = storedBytes(t)
            guard gt_xxh64(stored.baseAddress, stored.count, 0) == t.storedChecksum else {
                throw .checksumMismatch(tensor: t.name)
            }
            if t.compression != .none {
                if scratch.count < t.length { scratch = [UInt8](repeating: 0, count: t.length) }
                try scratch.withUnsafeMutableBytes { buf in
                    Result { () throws(ModelFileError) in try unpack(t, into: UnsafeMutableRawBufferPointer(rebasing: buf[..<t.length])) }
                }.get()
            }
            progress(i, t)
        }
    }

    /// The checksum in the header: identifies this exact file (used by unpacked siblings).
    public var headerChecksum: UInt64 {
        UInt64(littleEndian: mapping.bytes.loadUnaligned(fromByteOffset: 120, as: UInt64.self))
    }

    public var fileSize: Int { mapping.size }

    /// Bytes of the mapped file in memory now (the page cache), or nil if the system cannot say.
    public var residentBytes: Int? { mapping.residentByteCount() }

    /// Whether reading the whole mapped file in is worth it before the first token: most tensor
    /// bytes come from the mapping (not from decompressed copies in memory, whose compressed
    /// bytes in the file are never read again).
    public var isReadFromMapping: Bool { 2 * decompressedBytes < tensorBytes }

    /// Reads the mapped file into memory, front to back (`MappedFile.readIn`), calling `progress`
    /// with the bytes done. The forward pass would read the same pages on the first token; this
    /// way a slow disk's wait comes at load time, where it can be shown.
    public func readIn(progress: (Int) -> Void = { _ in }) { mapping.readIn(progress: progress) }

    /// Looks a tensor up and checks its shape.
    public func requireTensor(_ name: String, shape: [Int]) throws(ModelFileError) -> TensorInfo {
        guard let t = tensor(name) else { throw .missingTensor(name) }
        guard t.shape == shape else { throw .tensorShape(tensor: name, expected: shape, found: t.shape) }
        return t
    }
}

/// Page-aligned anonymous memory, freed on deinit.
final class AnonymousMemory: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let size: Int

    init(size: Int) throws(ModelFileError) {
        let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let p, p != MAP_FAILED else { throw .io("cannot allocate \(size) bytes: \(String(cString: strerror(errno)))") }
        base = p
        self.size = size
    }

    deinit { munmap(base, size) }
}
