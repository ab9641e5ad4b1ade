import Foundation
import GemmaKernels
@testable import GemmaConvert
import GemmaTiny
import XCTest

/// Malformed and unsupported GGUF files: each gives a one-line error naming the file (and the
/// tensor or key), never a crash or a huge allocation, and leaves no output behind.
final class GGUFMalformedTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gt-badgguf-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/out", withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Writes `bytes` as a .gguf file, converts it, and expects a one-line error mentioning every
    /// fragment, with nothing written.
    func expectFailure(_ bytes: [UInt8], _ fragments: [String], line: UInt = #line) throws {
        let path = dir + "/bad-\(UUID().uuidString).gguf"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Converter.convert(checkpoint: path, output: dir + "/out/m.gtm",
                                                   options: ConversionOptions(threads: 1)), line: line) { error in
            let message = "\(error)"
            XCTAssertFalse(message.contains("\n"), "one line: \(message)", line: line)
            XCTAssertTrue(message.contains(path) || fragments.contains { $0.hasPrefix("unsupported architecture") },
                          "'\(message)' should name the file", line: line)
            for f in fragments { XCTAssertTrue(message.contains(f), "'\(message)' should mention '\(f)'", line: line) }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/out"), [], "nothing left behind", line: line)
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Also checks the reader alone (the converter stops at the first problem either way).
    func expectReaderFailure(_ b: GGUFBuilder, _ fragments: [String], line: UInt = #line) throws {
        let path = dir + "/r-\(UUID().uuidString).gguf"
        try b.write(to: path)
        XCTAssertThrowsError(try GGUFFile(path: path), line: line) { error in
            let message = "\(error)"
            XCTAssertFalse(message.contains("\n"), "one line: \(message)", line: line)
            for f in fragments { XCTAssertTrue(message.contains(f), "'\(message)' should mention '\(f)'", line: line) }
        }
        try expectFailure(b.build().bytes, fragments, line: line)
    }

    func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    func testTruncatedFixturesAtManyPoints() throws {
        for path in [GGUFFixtures.gemma3, GGUFFixtures.gemma2, GGUFFixtures.zoo] {
            let full = try bytes(path)
            let header = try GGUFFile(path: path).dataOffset
            // Every byte of the first 64, then points spread over the metadata and tensor infos,
            // then inside the data section.
            var cuts = Array(0..<64)
            cuts += stride(from: 64, to: header, by: max(1, header / 97)).map { $0 }
            cuts += [header - 1, header, header + 1, (header + full.count) / 2, full.count - 1]
            for cut in Set(cuts).sorted() where cut < full.count {
                let fragment = cut < 4 ? "GGUF" : (cut >= header ? "truncated" : "")
                try expectFailure(Array(full[..<cut]), fragment.isEmpty ? [] : [fragment])
            }
        }
    }

    func testWrongMagicAndVersions() throws {
        var full = try bytes(GGUFFixtures.zoo)
        full[0] = UInt8(ascii: "g")
        try expectFailure(full, ["neither a checkpoint folder", "GGUF"])   // not sniffed as GGUF at all
        var b = GGUFBuilder.minimal()
        b.magic = Array("GGUG".utf8)
        XCTAssertThrowsError(try { let p = dir + "/m.gguf"; try b.write(to: p); _ = try GGUFFile(path: p) }()) {
            XCTAssertTrue("\($0)".contains("not a GGUF file"), "\($0)")
        }
        for (version, fragment) in [(UInt32(1), "version 1 is not supported"), (4, "version 4 is not supported"),
                                    (0, "version 0"), (UInt32(3).byteSwapped, "big-endian")] {
            var v = GGUFBuilder.minimal()
            v.version = version
            try expectReaderFailure(v, [fragment])
        }
    }

    func testHugeCountsAndLengths() throws {
        var b = GGUFBuilder.minimal()
        b.kvCountOverride = 1 << 62
        try expectReaderFailure(b, ["metadata entries"])
        b = GGUFBuilder.minimal()
        b.tensorCountOverride = UInt64.max
        try expectReaderFailure(b, ["tensors"])
        b = GGUFBuilder.minimal()
        var longString: [UInt8] = []
        GGUFBuilder.put(UInt64.max - 3, &longString)
        b.metadata.append(("k", .raw(8, longString)))
        try expectReaderFailure(b, ["metadata k", "claims"])
        b = GGUFBuilder.minimal()
        var hugeArray: [UInt8] = []
        GGUFBuilder.put(UInt32(4), &hugeArray)
        GGUFBuilder.put(UInt64(1) << 61, &hugeArray)
        b.metadata.append(("arr", .raw(9, hugeArray)))
        try expectReaderFailure(b, ["metadata arr", "elements"])
        // An array that the file could hold (one byte per element) but that is too large.
        b = GGUFBuilder.minimal()
        var bigArray: [UInt8] = []
        GGUFBuilder.put(UInt32(0), &bigArray)
        GGUFBuilder.put(UInt64(GGUFFile.maxMetadataElements + 1), &bigArray)
        bigArray += [UInt8](repeating: 7, count: GGUFFile.maxMetadataElements + 1)
        b.metadata.append(("bytes", .raw(9, bigArray)))
        try expectReaderFailure(b, ["metadata bytes", "array elements"])
        b = GGUFBuilder.minimal()
        b.tensors[0].name = String(repeating: "x", count: 10)
        var raw = b.build().bytes
        // Make the tensor's name length absurd (the u64 before the name).
        let nameAt = try XCTUnwrap(raw.firstRange(of: Array("xxxxxxxxxx".utf8))).lowerBound - 8
        raw.replaceSubrange(nameAt ..< nameAt + 8, with: withUnsafeBytes(of: (UInt64(1) << 40).littleEndian) { Array($0) })
        try expectFailure(raw, ["the name of tensor 0"])
    }

    func testBadMetadataValues() throws {
        var b = GGUFBuilder.minimal()
        b.metadata.append(("odd", .raw(13, [0, 0, 0, 0])))
        try expectReaderFailure(b, ["odd", "unknown value type 13"])
        b = GGUFBuilder.minimal()
        var elem: [UInt8] = []
        GGUFBuilder.put(UInt32(77), &elem)
        GGUFBuilder.put(UInt64(1), &elem)
        b.metadata.append(("arr", .raw(9, elem)))
        try expectReaderFailure(b, ["arr", "unknown value type 77"])
        b = GGUFBuilder.minimal()
        b.metadata.append(("flag", .raw(7, [2])))
        try expectReaderFailure(b, ["flag", "bool of value 2"])
        b = GGUFBuilder.minimal()
        var badUTF8: [UInt8] = []
        GGUFBuilder.put(UInt64(2), &badUTF8)
        badUTF8 += [0xC3, 0x28]
        b.metadata.append(("s", .raw(8, badUTF8)))
        try expectReaderFailure(b, ["metadata s", "UTF-8"])
        b = GGUFBuilder.minimal()
        b.metadata.append(("general.architecture", .string("gemma")))
        try expectReaderFailure(b, ["general.architecture appears twice"])
        b = GGUFBuilder.minimal()
        b.metadata.append(("", .u8(1)))
        try expectReaderFailure(b, ["empty"])
        // Arrays nested deeper than the limit.
        var deep = GGUFBuilder.Value.array(4, [.u32(1)])
        for _ in 0..<10 { deep = .array(9, [deep]) }
        b = GGUFBuilder.minimal()
        b.metadata.append(("deep", deep))
        try expectReaderFailure(b, ["deep", "nests arrays"])
        for bad in [GGUFBuilder.Value.u32(3), .u32(0), .string("32"), .u64(1 << 40)] {
            b = GGUFBuilder.minimal()
            b.metadata.append(("general.alignment", bad))
            try expectReaderFailure(b, ["general.alignment"])
        }
    }

    func testBadTensorInfos() throws {
        var b = GGUFBuilder.minimal()
        b.tensors[0].dims = []
        try expectReaderFailure(b, ["tensor t has 0 dimensions"])
        b = GGUFBuilder.minimal()
        b.tensors[0].dims = [32, 1, 1, 1, 1]
        try expectReaderFailure(b, ["tensor t has 5 dimensions"])
        b = GGUFBuilder.minimal()
        b.tensors[0].dims = [32, 0]
        try expectReaderFailure(b, ["tensor t has dimension 1 = 0"])
        b = GGUFBuilder.minimal()
        b.tensors[0].dims = [1 << 40, 1 << 40, 1 << 40]
        try expectReaderFailure(b, ["tensor t", "overflow"])
        b = GGUFBuilder.minimal()
        b.tensors[0].type = 99
        try expectReaderFailure(b, ["tensor t has unknown ggml type 99"])
        b = GGUFBuilder.minimal(dims: [100, 2])
        b.tensors[0].type = 8   // Q8_0 rows of 100: not whole blocks
        try expectReaderFailure(b, ["tensor t", "not a multiple of the Q8_0 block"])
        b = GGUFBuilder.minimal()
        b.tensors[0].offset = UInt64.max - 31   // aligned, but far past the end
        try expectReaderFailure(b, ["tensor t", "run past the end"])
        b = GGUFBuilder.minimal()
        b.tensors[0].offset = 4
        try expectReaderFailure(b, ["tensor t", "not a multiple of the alignment"])
        b = GGUFBuilder.minimal()
        b.tensors.append(b.tensors[0])
        try expectReaderFailure(b, ["tensor t appears twice"])
        b = GGUFBuilder.minimal()
        var second = b.tensors[0]
        second.name = "u"
        second.offset = 0
        b.tensors.append(second)
        try expectReaderFailure(b, ["overlap"])
        b = GGUFBuilder.minimal()
        b.tensors[0].name = ""
        try expectReaderFailure(b, ["empty name"])
    }

    /// Well-formed files the importer does not take: other architectures, tensors of types it
    /// cannot dequantize, unknown or missing tensors, broken configuration.
    func testUnsupportedContent() throws {
        try expectFailure(try bytes(GGUFFixtures.zoo), ["unsupported architecture zoo"])
        let gemma3 = try bytes(GGUFFixtures.gemma3)
        let file = try GGUFFile(path: GGUFFixtures.gemma3)

        // Retype one BF16 matrix as I16 (same size): readable, not importable.
        let q = try XCTUnwrap(file.tensorsByName["blk.1.attn_q.weight"])
        var retyped = gemma3
        let typeAt = try typeFieldOffset(of: "blk.1.attn_q.weight", in: gemma3)
        XCTAssertEqual(gemma3[typeAt], 30, "BF16")
        retyped[typeAt] = 25   // I16
        _ = q
        try expectFailure(retyped, ["blk.1.attn_q.weight", "I16", "cannot dequantize"])

        // An extra tensor the architecture does not have.
        var renamed = gemma3
        let at = try XCTUnwrap(renamed.firstRange(of: Array("blk.0.ffn_up.weight".utf8)))
        renamed.replaceSubrange(at, with: Array("blk.0.ffn_xx.weight".utf8))
        try expectFailure(renamed, ["blk.0.ffn_xx.weight"])

        // A layer count far beyond any model (found by fuzz-gguf: it used to size the layer-type
        // list, 4 G entries, before any check).
        var layers = gemma3
        let blockCount = try XCTUnwrap(layers.firstRange(of: Array("gemma3.block_count".utf8)))
        XCTAssertEqual(layers[blockCount.upperBound], 4, "a u32 value")
        for i in 0..<4 { layers[blockCount.upperBound + 4 + i] = 0xFF }
        try expectFailure(layers, ["block_count", "out of range"])

        // A key that breaks the configuration.
        var heads = gemma3
        let key = try XCTUnwrap(heads.firstRange(of: Array("gemma3.attention.head_count_kv".utf8)))
        heads[key.upperBound + 4] = 3   // the u32 value after the type field: 3 KV heads for 4 heads
        try expectFailure(heads, ["num_attention_heads"])

        // A GGUF whose LM head differs from the embedding.
        var b = GGUFBuilder()
        b.metadata = [("general.architecture", .string("gemma"))]
        b.tensors = [.init(name: "token_embd.weight", dims: [32, 2], type: 0, data: [UInt8](repeating: 0, count: 256)),
                     .init(name: "output.weight", dims: [32, 2], type: 0, data: [UInt8](repeating: 1, count: 256))]
        try expectFailure(b.build().bytes, ["output.weight", "untied"])
        b.tensors.removeLast()
        try expectFailure(b.build().bytes, ["missing gemma.embedding_length"])
    }

    /// Offset of the u32 type field of a tensor's info, found by its name.
    func typeFieldOffset(of name: String, in bytes: [UInt8]) throws -> Int {
        let r = try XCTUnwrap(bytes.firstRange(of: Array(name.utf8)))
        var p = r.upperBound
        let rank = Int(bytes[p])
        p += 4 + rank * 8
        return p
    }

    func testCLIErrorsForGGUF() throws {
        let path = dir + "/trunc.gguf"
        try Data(try bytes(GGUFFixtures.gemma3).prefix(1000)).write(to: URL(fileURLWithPath: path))
        let r = try runQuantize([path, "-o", dir + "/out/x.gtm"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("error: ") && r.stderr.contains("truncated"), r.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/out"), [])
    }
}
