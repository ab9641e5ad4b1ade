import Foundation
import GemmaKernels

/// Writes a model file in one pass, atomically.
///
/// Layout: header, metadata, tokenizer, padding to a page, tensor data, tensor table (written
/// last, once every stored length is known), then the header is rewritten. Everything goes to
/// an unnamed temporary file in the destination folder (O_TMPFILE where the file system has it,
/// otherwise a hidden `.name.partial-PID` file) that is only linked into place by `finish()`:
/// an interrupted run leaves no output behind.
public final class ModelFileWriter {
    public let destination: String
    private var file: OutputFile
    private var header = FileHeader()
    private let metadataBytes: [UInt8]
    private let tokenizerBytes: [UInt8]
    private var tensors: [TensorInfo] = []
    private var position: Int
    private var current: TensorInfo?
    private var currentHash = gt_xxh64_state()
    private var finished = false

    /// `streaming`: the file is written once and not read back soon (a converter's output): its
    /// pages are written back and dropped from the page cache as it grows (OutputFile).
    public init(destination: String, metadata: ModelMetadata, vocabulary: TokenizerVocabulary, overwrite: Bool,
                streaming: Bool = false) throws(ModelFileError) {
        self.destination = destination
        if !overwrite, FileManager.default.fileExists(atPath: destination) {
            throw .io("\(destination) already exists (use --force to replace it)")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do { metadataBytes = Array(try encoder.encode(metadata)) } catch { throw .invalidMetadata("\(error)") }
        tokenizerBytes = vocabulary.encoded()

        header.metadata = FileHeader.size ..< FileHeader.size + metadataBytes.count
        header.tokenizer = header.metadata.upperBound ..< header.metadata.upperBound + tokenizerBytes.count
        let dataStart = alignUp(header.tokenizer.upperBound, FileHeader.dataAlignment)
        var prefix = [UInt8](repeating: 0, count: FileHeader.size)
        prefix += metadataBytes
        prefix += tokenizerBytes
        prefix += [UInt8](repeating: 0, count: dataStart - prefix.count)
        let output: OutputFile
        do { output = try OutputFile(destination: destination, streaming: streaming) } catch { throw ModelFileError(error) }
        do {
            try output.write(prefix)
        } catch {
            output.discard()  // deinit does not run for an initializer that throws here
            throw ModelFileError(error)
        }
        file = output
        position = dataStart
    }

    deinit {
        if !finished { file.discard() }
    }

    private var dataStart: Int { alignUp(header.tokenizer.upperBound, FileHeader.dataAlignment) }

    /// Starts a tensor; its stored bytes follow through `append`, then `endTensor`.
    public func beginTensor(name: String, type: StorageType, shape: [Int], compression: TensorInfo.Compression) throws(ModelFileError) {
        precondition(current == nil, "endTensor not called")
        let aligned = alignUp(position, FileHeader.tensorAlignment)
        if aligned > position {
            do { try file.write([UInt8](repeating: 0, count: aligned - position)) } catch { throw ModelFileError(error) }
        }
        position = aligned
        var t = TensorInfo(name: name, type: type, shape: shape)
        t.compression = compression
        t.offset = position - dataStart
        current = t
        gt_xxh64_reset(&currentHash, 0)
    }

    public func append(_ bytes: UnsafeRawBufferPointer) throws(ModelFileError) {
        precondition(current != nil)
        gt_xxh64_update(&currentHash, bytes.baseAddress, bytes.count)
        do { try file.write(bytes) } catch { throw ModelFileError(error) }
        position += bytes.count
        current!.storedLength += bytes.count
    }

    /// Ends the tensor. `length` and `checksum` describe the uncompressed bytes (for an
    /// uncompressed tensor they must equal what was appended).
    public func endTensor(length: Int, checksum: UInt64) throws(ModelFileError) {
        guard var t = current else { preconditionFailure("beginTensor not called") }
        t.length = length
        t.checksum = checksum
        t.storedChecksum = gt_xxh64_digest(&currentHash)
        guard TensorInfo.expectedLength(type: t.type, shape: t.shape) == length else {
            throw .invalidTensorTable("\(t.name): \(length) bytes do not fit shape \(t.shape) as \(t.type)")
        }
        if t.compression == .none {
            guard t.storedLength == length, t.storedChecksum == checksum else {
                throw .io("internal error: \(t.name) stored bytes disagree with the uncompressed checksum")
            }
        }
        tensors.append(t)
        current = nil
    }

    /// Convenience: writes a whole uncompressed tensor.
    public func addTensor(name: String, type: StorageType, shape: [Int], bytes: UnsafeRawBufferPointer) throws(ModelFileError) {
        try beginTensor(name: name, type: type, shape: shape, compression: .none)
        try append(bytes)
        try endTensor(length: bytes.count, checksum: gt_xxh64(bytes.baseAddress, bytes.count, 0))
    }

    /// Writes the table and header, flushes, and links the file into place. Returns its size.
    @discardableResult
    public func finish() throws(ModelFileError) -> Int {
        precondition(current == nil)
        let table = TensorTableCodec.encode(tensors)
        header.data = dataStart ..< position
        header.tensorTable = position ..< position + table.count
        header.fileLength = header.tensorTable.upperBound
        header.version = FileHeader.version(for: tensors.map(\.type))
        var h = gt_xxh64_state()
        gt_xxh64_reset(&h, 0)
        for section in [metadataBytes, tokenizerBytes, table] {
            section.withUnsafeBytes { gt_xxh64_update(&h, $0.baseAddress, $0.count) }
        }
        header.sectionsChecksum = gt_xxh64_digest(&h)
        do {
            try file.write(table)
            try file.write(header.encoded(), at: 0)
            try file.commit()
        } catch {
            throw ModelFileError(error)
        }
        finished = true
        return header.fileLength
    }

    /// Abandons the file: nothing is left behind.
    public func discard() {
        if !finished { file.discard() }
        finished = true
    }
}
