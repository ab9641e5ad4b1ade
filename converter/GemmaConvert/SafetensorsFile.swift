import Foundation
import GemmaTiny

/// A memory-mapped .safetensors file whose header has been validated: every tensor's dtype is
/// known, its byte range lies inside the file, matches its shape, and overlaps no other.
final class SafetensorsFile: @unchecked Sendable {
    enum DType: String, Sendable {
        case bf16 = "BF16", f16 = "F16", f32 = "F32"
        var size: Int { self == .f32 ? 4 : 2 }
        var name: String { ["BF16": "bfloat16", "F16": "float16", "F32": "float32"][rawValue]! }
    }

    struct Tensor: Sendable {
        let name: String
        let dtype: DType
        let shape: [Int]
        /// Byte range inside the file.
        let range: Range<Int>
        var elementCount: Int { shape.reduce(1, *) }
    }

    let path: String
    let tensors: [String: Tensor]
    private let mapping: MappedFile

    static let maxHeaderBytes = 100 << 20

    init(path: String) throws(ConversionError) {
        self.path = path
        let mapping: MappedFile
        do { mapping = try MappedFile(path: path) } catch {
            throw FileManager.default.fileExists(atPath: path) ? .invalidSafetensors(file: path, reason: "\(error)") : .missingFile(path)
        }
        self.mapping = mapping
        let bytes = mapping.bytes
        func bad(_ why: String) -> ConversionError { .invalidSafetensors(file: path, reason: why) }
        guard bytes.count >= 8 else { throw bad("truncated: \(bytes.count) bytes, no header") }
        let headerLength = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard headerLength <= UInt64(min(Self.maxHeaderBytes, bytes.count - 8)) else {
            throw bad("truncated or corrupt: header claims \(headerLength) bytes, file has \(bytes.count)")
        }
        let dataStart = 8 + Int(headerLength)
        let dataLength = bytes.count - dataStart
        guard let json = try? JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart])) as? [String: Any] else {
            throw bad("header is not a JSON object")
        }
        var tensors: [String: Tensor] = [:]
        for (name, value) in json where name != "__metadata__" {
            guard let entry = value as? [String: Any],
                  let dtypeName = entry["dtype"] as? String,
                  let shapeAny = entry["shape"] as? [Any],
                  let offsetsAny = entry["data_offsets"] as? [Any], offsetsAny.count == 2 else {
                throw bad("tensor \(name) has a malformed header entry")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw .unsupportedDtype(file: path, tensor: name, dtype: dtypeName)
            }
            let shape = try shapeAny.map { (d: Any) throws(ConversionError) -> Int in
                guard let n = (d as? NSNumber)?.int64Value, n >= 0, n <= 1 << 40 else { throw bad("tensor \(name) has an invalid shape") }
                return Int(n)
            }
            let offsets = try offsetsAny.map { (d: Any) throws(ConversionError) -> Int in
                guard let n = (d as? NSNumber)?.int64Value, n >= 0 else { throw bad("tensor \(name) has invalid data_offsets") }
                return Int(n)
            }
            guard offsets[0] <= offsets[1], offsets[1] <= dataLength else {
                throw bad("tensor \(name): data_offsets [\(offsets[0]), \(offsets[1])] run past the end of the file (truncated?)")
            }
            var count = 1
            for d in shape {
                let (c, o) = count.multipliedReportingOverflow(by: d)
                guard !o else { throw bad("tensor \(name): shape \(shape) overflows") }
                count = c
            }
            // The byte count can overflow where the element count did not (fuzzing: shape [2^40, 2^21]).
            let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.size)
            guard !overflow else { throw bad("tensor \(name): shape \(shape) overflows") }
            guard offsets[1] - offsets[0] == byteCount else {
                throw bad("tensor \(name): \(offsets[1] - offsets[0]) bytes do not match shape \(shape) of \(dtypeName)")
            }
            tensors[name] = Tensor(name: name, dtype: dtype, shape: shape,
                                   range: dataStart + offsets[0] ..< dataStart + offsets[1])
        }
        let sorted = tensors.values.filter { !$0.range.isEmpty }.sorted { $0.range.lowerBound < $1.range.lowerBound }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.range.upperBound > b.range.lowerBound {
            throw bad("tensors \(a.name) and \(b.name) overlap")
        }
        self.tensors = tensors
    }

    var fileSize: Int { mapping.size }

    /// Tells the kernel these bytes of a tensor are no longer needed (they stay in the page
    /// cache, but leave this process's resident set).
    func release(_ t: Tensor, bytes: Range<Int>) {
        mapping.adviseDontNeed(t.range.lowerBound + bytes.lowerBound ..< t.range.lowerBound + bytes.upperBound)
    }

    /// Starts reading these bytes of a tensor from disk, if they are not cached.
    func prefetch(_ t: Tensor, bytes: Range<Int>) {
        mapping.adviseWillNeed(t.range.lowerBound + bytes.lowerBound ..< t.range.lowerBound + bytes.upperBound)
    }

    func bytes(_ t: Tensor) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: mapping.bytes[t.range]) }
}
