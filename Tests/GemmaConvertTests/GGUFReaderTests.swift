import Foundation
@testable import GemmaConvert
import GemmaKernels
import GemmaQuantizeKernels
import GemmaTiny
import XCTest

/// The GGUF reader and the dequantizers against files written by gguf-py
/// (fixtures/generate_gguf.py) and gguf-py's own dequantized values.
final class GGUFReaderTests: XCTestCase {
    func testZooMetadataOfEveryValueType() throws {
        let f = try GGUFFile(path: GGUFFixtures.zoo)
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.alignment, 64)
        XCTAssertEqual(f.metadata["general.alignment"], .uint32(64))
        XCTAssertEqual(f.metadata["general.architecture"], .string("zoo"))
        XCTAssertEqual(f.metadata["zoo.u8"], .uint8(200))
        XCTAssertEqual(f.metadata["zoo.i8"], .int8(-100))
        XCTAssertEqual(f.metadata["zoo.u16"], .uint16(60000))
        XCTAssertEqual(f.metadata["zoo.i16"], .int16(-30000))
        XCTAssertEqual(f.metadata["zoo.u32"], .uint32(4_000_000_000))
        XCTAssertEqual(f.metadata["zoo.i32"], .int32(-2_000_000_000))
        XCTAssertEqual(f.metadata["zoo.f32"], .float32(0.1))
        XCTAssertEqual(f.metadata["zoo.f32"]?.number, 0.1, "float32 keys read as their shortest decimal")
        XCTAssertEqual(f.metadata["zoo.u64"], .uint64((1 << 63) + 5))
        XCTAssertNil(f.metadata["zoo.u64"]?.integer, "does not fit an Int")
        XCTAssertEqual(f.metadata["zoo.i64"], .int64(-(1 << 62)))
        XCTAssertEqual(f.metadata["zoo.f64"], .float64(1e-300))
        XCTAssertEqual(f.metadata["zoo.bool"], .bool(true))
        XCTAssertEqual(f.metadata["zoo.string"], .string("h\u{e9}llo \u{2581} \u{1F600}"))
        XCTAssertEqual(f.metadata["zoo.array.i32"], .array(.int32, [.int32(1), .int32(-2), .int32(3)]))
        XCTAssertEqual(f.metadata["zoo.array.str"], .array(.string, [.string("a"), .string(""), .string("\u{2581}b")]))
        XCTAssertEqual(f.metadata["zoo.array.nested"],
                       .array(.array, [.array(.int32, [.int32(1), .int32(2)]), .array(.int32, [.int32(3)])]))
        XCTAssertEqual(f.keys.first, "general.architecture", "file order is kept")
    }

    func testZooTensorTable() throws {
        let f = try GGUFFile(path: GGUFFixtures.zoo)
        let golden = try XCTUnwrap(try GGUFFixtures.goldens()["quant-zoo"] as? [String: Any])
        let entries = try XCTUnwrap(golden["tensors"] as? [[String: Any]])
        XCTAssertEqual(f.tensors.map(\.name), entries.map { $0["name"] as! String })
        for (t, e) in zip(f.tensors, entries) {
            XCTAssertEqual(t.type.name, e["type"] as? String, t.name)
            XCTAssertEqual(t.shape, e["shape"] as? [Int], t.name)
            XCTAssertEqual(t.offset % 64, 0, "\(t.name) aligned to general.alignment")
            XCTAssertEqual(t.byteCount, t.elementCount / t.type.blockValues * t.type.blockBytes)
        }
        let t3 = try XCTUnwrap(f.tensorsByName["zoo.f32.3d"])
        XCTAssertEqual(t3.dims, [64, 2, 2], "GGUF order: fastest first")
        XCTAssertEqual(t3.shape, [2, 2, 64])
    }

    /// Every supported type, dequantized row by row, equals gguf-py's values bit for bit.
    func testDequantizationMatchesGGUFPy() throws {
        let f = try GGUFFile(path: GGUFFixtures.zoo)
        let golden = try XCTUnwrap(try GGUFFixtures.goldens()["quant-zoo"] as? [String: Any])
        let entries = try XCTUnwrap(golden["tensors"] as? [[String: Any]])
        let values = try GGUFFixtures.zooValues()
        var checkedTypes = Set<String>()
        for e in entries {
            let t = try XCTUnwrap(f.tensorsByName[e["name"] as! String])
            guard let offset = e["values_offset"] as? Int, let count = e["count"] as? Int else {
                XCTAssertEqual(gt_gguf_can_dequantize(Int32(t.type.id)), 0, "\(t.name) (\(t.type)) has no golden: unsupported")
                continue
            }
            XCTAssertEqual(count, t.elementCount)
            let bytes = f.bytes(t)
            var out = [Float](repeating: .nan, count: count)
            out.withUnsafeMutableBufferPointer { o in
                for r in 0..<(count / t.rowLength) {
                    XCTAssertEqual(gt_gguf_dequantize_row(Int32(t.type.id), bytes.baseAddress! + r * t.rowBytes, t.rowLength,
                                                          o.baseAddress! + r * t.rowLength), 0)
                }
            }
            let expected = Array(values[offset ..< offset + count])
            let mismatch = zip(out, expected).enumerated().first { $0.element.0.bitPattern != $0.element.1.bitPattern }
            XCTAssertNil(mismatch, "\(t.name) (\(t.type)): element \(mismatch?.offset ?? -1) is \(mismatch?.element.0 ?? 0), gguf-py says \(mismatch?.element.1 ?? 0)")
            checkedTypes.insert(t.type.name)
        }
        XCTAssertEqual(checkedTypes, ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"])
    }

    func testDequantizerRefusesUnknownTypesAndPartialBlocks() {
        var out = [Float](repeating: 7, count: 256)
        let src = [UInt8](repeating: 0, count: 1024)
        XCTAssertEqual(gt_gguf_dequantize_row(10, src, 256, &out), -1, "Q2_K is not supported")
        XCTAssertEqual(gt_gguf_dequantize_row(99, src, 256, &out), -1)
        XCTAssertEqual(gt_gguf_dequantize_row(Int32(GT_GGML_Q4_K), src, 128, &out), -1, "half a K block")
        XCTAssertEqual(gt_gguf_dequantize_row(Int32(GT_GGML_Q8_0), src, 33, &out), -1)
        XCTAssertEqual(out, [Float](repeating: 7, count: 256), "output untouched")
        for (type, values, bytes) in [(GT_GGML_Q8_0, 32, 34), (GT_GGML_Q4_0, 32, 18), (GT_GGML_Q4_1, 32, 20), (GT_GGML_Q5_0, 32, 22),
                                      (GT_GGML_Q5_1, 32, 24), (GT_GGML_Q4_K, 256, 144), (GT_GGML_Q5_K, 256, 176),
                                      (GT_GGML_Q6_K, 256, 210), (GT_GGML_BF16, 1, 2), (GT_GGML_F16, 1, 2), (GT_GGML_F32, 1, 4)] {
            XCTAssertEqual(gt_gguf_block_values(Int32(type)), values)
            XCTAssertEqual(gt_gguf_block_bytes(Int32(type)), bytes)
            XCTAssertEqual(GGMLType(id: UInt32(type))?.blockValues, values)
            XCTAssertEqual(GGMLType(id: UInt32(type))?.blockBytes, bytes)
        }
    }

    func testModelFilesAreReadWithTheirVocabulary() throws {
        for path in [GGUFFixtures.gemma3, GGUFFixtures.gemma2] {
            let f = try GGUFFile(path: path)
            XCTAssertEqual(f.alignment, 32)
            XCTAssertEqual(f.metadata["tokenizer.ggml.model"], .string("llama"))
            XCTAssertEqual(f.metadata["tokenizer.ggml.tokens"]?.array?.count, 2048)
            XCTAssertEqual(f.tensorsByName["token_embd.weight"]?.shape, [2048, 64])
            XCTAssertEqual(f.tensorsByName["blk.0.attn_q.weight"]?.shape, [64, 64])
        }
    }

    func testMagicSniffing() throws {
        XCTAssertTrue(GGUFFile.hasMagic(path: GGUFFixtures.zoo))
        XCTAssertFalse(GGUFFile.hasMagic(path: GGUFFixtures.tokenizer))
        XCTAssertFalse(GGUFFile.hasMagic(path: "/nonexistent/file.gguf"))
    }
}
