import Foundation
@testable import GemmaConvert
import GemmaKernels
import GemmaQuantizeKernels
import GemmaTiny
import XCTest

/// Writes GGUF files byte by byte for the tests: well-formed ones (a Gemma 1 model from a
/// safetensors checkpoint) and deliberately broken ones (every count, size and offset can be
/// overridden). The files the reader is validated against are written by gguf-py
/// (fixtures/generate_gguf.py); this only makes variants.
struct GGUFBuilder {
    enum Value {
        case u8(UInt8), i8(Int8), u16(UInt16), i16(Int16), u32(UInt32), i32(Int32), u64(UInt64), i64(Int64)
        case f32(Float), f64(Double), bool(Bool), string(String)
        case array(UInt32, [Value])
        /// Raw bytes after the type field (for malformed values), with the type number to write.
        case raw(UInt32, [UInt8])

        var typeNumber: UInt32 {
            switch self {
            case .u8: return 0
            case .i8: return 1
            case .u16: return 2
            case .i16: return 3
            case .u32: return 4
            case .i32: return 5
            case .f32: return 6
            case .bool: return 7
            case .string: return 8
            case .array: return 9
            case .u64: return 10
            case .i64: return 11
            case .f64: return 12
            case .raw(let t, _): return t
            }
        }

        func encode(into w: inout [UInt8]) {
            switch self {
            case .u8(let v): w.append(v)
            case .i8(let v): w.append(UInt8(bitPattern: v))
            case .u16(let v): GGUFBuilder.put(v, &w)
            case .i16(let v): GGUFBuilder.put(v, &w)
            case .u32(let v): GGUFBuilder.put(v, &w)
            case .i32(let v): GGUFBuilder.put(v, &w)
            case .u64(let v): GGUFBuilder.put(v, &w)
            case .i64(let v): GGUFBuilder.put(v, &w)
            case .f32(let v): GGUFBuilder.put(v.bitPattern, &w)
            case .f64(let v): GGUFBuilder.put(v.bitPattern, &w)
            case .bool(let v): w.append(v ? 1 : 0)
            case .string(let s): GGUFBuilder.putString(s, &w)
            case .array(let t, let list):
                GGUFBuilder.put(t, &w)
                GGUFBuilder.put(UInt64(list.count), &w)
                for v in list { v.encode(into: &w) }
            case .raw(_, let bytes): w += bytes
            }
        }
    }

    struct TensorInfo {
        var name: String
        var dims: [UInt64]
        var type: UInt32
        /// nil: placed by the builder (aligned, in order).
        var offset: UInt64? = nil
        var data: [UInt8] = []
    }

    var magic: [UInt8] = Array("GGUF".utf8)
    var version: UInt32 = 3
    var metadata: [(String, Value)] = []
    var tensors: [TensorInfo] = []
    var alignment = 32
    var tensorCountOverride: UInt64? = nil
    var kvCountOverride: UInt64? = nil
    /// Appended after the data section.
    var trailing: [UInt8] = []

    static func put<T: FixedWidthInteger>(_ v: T, _ w: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { w += $0 }
    }

    static func putString(_ s: String, _ w: inout [UInt8]) {
        put(UInt64(s.utf8.count), &w)
        w += Array(s.utf8)
    }

    /// The file, and the offset at which the data section starts.
    func build() -> (bytes: [UInt8], dataOffset: Int) {
        var w: [UInt8] = magic
        Self.put(version, &w)
        Self.put(tensorCountOverride ?? UInt64(tensors.count), &w)
        Self.put(kvCountOverride ?? UInt64(metadata.count), &w)
        for (key, value) in metadata {
            Self.putString(key, &w)
            Self.put(value.typeNumber, &w)
            value.encode(into: &w)
        }
        // Tensors without an explicit offset are laid out in order, each aligned; an explicit
        // offset is written as given (its data is placed only if it falls inside that layout).
        var placed: [UInt64] = []
        var next: UInt64 = 0
        for t in tensors {
            if let offset = t.offset {
                placed.append(offset)
            } else {
                placed.append(next)
                next = (next + UInt64(t.data.count) + UInt64(alignment) - 1) / UInt64(alignment) * UInt64(alignment)
            }
        }
        for (t, offset) in zip(tensors, placed) {
            Self.putString(t.name, &w)
            Self.put(UInt32(t.dims.count), &w)
            for d in t.dims { Self.put(d, &w) }
            Self.put(t.type, &w)
            Self.put(offset, &w)
        }
        while w.count % alignment != 0 { w.append(0) }
        let dataOffset = w.count
        var data = [UInt8](repeating: 0, count: Int(next))
        for (t, offset) in zip(tensors, placed) where offset <= UInt64(data.count) && t.data.count <= data.count - Int(offset) {
            data.replaceSubrange(Int(offset) ..< Int(offset) + t.data.count, with: t.data)
        }
        data += trailing
        return (w + data, dataOffset)
    }

    func write(to path: String) throws {
        try Data(build().bytes).write(to: URL(fileURLWithPath: path))
    }

    /// A one-tensor file that the reader accepts: general.architecture "test" and one F32
    /// tensor "t" of `dims`.
    static func minimal(dims: [UInt64] = [32, 2]) -> GGUFBuilder {
        var b = GGUFBuilder()
        b.metadata = [("general.architecture", .string("test"))]
        let count = Int(dims.reduce(1, *))
        var data: [UInt8] = []
        for i in 0..<count { put(Float(i).bitPattern, &data) }
        b.tensors = [TensorInfo(name: "t", dims: dims, type: 0, data: data)]
        return b
    }
}

/// Paths and golden data of the committed GGUF fixtures.
enum GGUFFixtures {
    static var root: String { SyntheticCheckpoint.repositoryRoot + "/fixtures" }
    static var zoo: String { root + "/gguf/quant-zoo.gguf" }
    static var gemma3: String { root + "/gguf/tiny-gemma3-bf16.gguf" }
    static var gemma2: String { root + "/gguf/tiny-gemma2-mixed.gguf" }
    static var tokenizer: String { root + "/tokenizer/tokenizer.model" }

    static func goldens() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: root + "/goldens/gguf-fixtures.json"))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func zooValues() throws -> [Float] {
        let data = try Data(contentsOf: URL(fileURLWithPath: root + "/goldens/gguf-quant-zoo.f32"))
        return data.withUnsafeBytes { raw in
            (0..<raw.count / 4).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }

    /// FNV-1a 64 of little-endian f32 bytes, as generate_gguf.py writes it.
    static func fnv1a64(_ values: [Float]) -> String {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for v in values {
            var bits = v.bitPattern.littleEndian
            withUnsafeBytes(of: &bits) { for b in $0 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 } }
        }
        return String(format: "%016llx", h)
    }
}

/// Reads every tensor of a converted model file as f32.
func dequantizedTensors(_ file: ModelFile) throws -> [String: [Float]] {
    var result: [String: [Float]] = [:]
    for t in file.tensors {
        let bytes = try file.data(t)
        var out = [Float](repeating: .nan, count: t.elementCount)
        out.withUnsafeMutableBufferPointer { o in
            for r in 0..<t.rowCount {
                gt_dequantize_row(Int32(t.type.rawValue), bytes.baseAddress! + r * t.rowBytes, t.rowLength,
                                  o.baseAddress! + r * t.rowLength)
            }
        }
        result[t.name] = out
    }
    return result
}

func relativeRMSError(_ reference: [Float], _ values: [Float]) -> Double {
    var e = 0.0, r = 0.0
    gt_error_sums(reference, values, reference.count, &e, &r)
    return (e / max(r, 1e-30)).squareRoot()
}

/// Runs the gemma-quantize executable built next to the test bundle.
func runQuantize(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let r = try QuantizeProcess.run(arguments)
    return (r.status, r.stdout, r.stderr)
}
