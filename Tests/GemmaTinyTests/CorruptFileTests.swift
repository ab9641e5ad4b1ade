import Foundation
import GemmaKernels
@testable import GemmaTiny
import XCTest

/// Truncated, bit-flipped and hostile model files give thrown errors, never crashes.
final class CorruptFileTests: XCTestCase {
    var dir: String!
    var original: [UInt8] = []
    var header = FileHeader()

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gt-corrupt-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let writer = try ModelFileWriter(destination: dir + "/good.gtm", metadata: FormatTests.metadata(),
                                         vocabulary: FormatTests.vocabulary, overwrite: true)
        for (name, type, shape, data) in FormatTests.sampleTensors() where name != "big" {
            try data.withUnsafeBytes { try writer.addTensor(name: name, type: type, shape: shape, bytes: $0) }
        }
        try writer.finish()
        original = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/good.gtm")))
        header = try ModelFile(path: dir + "/good.gtm").header
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func open(_ bytes: [UInt8]) throws -> ModelFile {
        let path = dir + "/bad-\(UUID().uuidString).gtm"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return try ModelFile(path: path)
    }

    /// Re-seals the header checksum so that a test reaches the checks behind it.
    func resealed(_ bytes: [UInt8]) -> [UInt8] {
        var b = bytes
        let sum = b.withUnsafeBytes { gt_xxh64($0.baseAddress, 120, 0) }
        withUnsafeBytes(of: sum.littleEndian) { for i in 0..<8 { b[120 + i] = $0[i] } }
        return b
    }

    func putU64(_ bytes: inout [UInt8], at offset: Int, _ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { for i in 0..<8 { bytes[offset + i] = $0[i] } }
    }

    /// Version 1 files (no q5) and version 2 files open; a file is written with the lowest
    /// version that holds its types; an unknown version, or a q5 tensor in a version 1 file, is
    /// a clear error. (Version 3, the K types: testKQuantTensorsNeedVersion3.)
    func testFormatVersions() throws {
        XCTAssertEqual(header.version, 1, "no q5 tensor: version 1, readable by older builds")
        let q5Path = dir + "/q5.gtm"
        let writer = try ModelFileWriter(destination: q5Path, metadata: FormatTests.metadata(),
                                         vocabulary: FormatTests.vocabulary, overwrite: true)
        let q5 = [UInt8](repeating: 0x11, count: 4 * 2 * 22)
        try q5.withUnsafeBytes { try writer.addTensor(name: "w5", type: .q5, shape: [4, 64], bytes: $0) }
        try writer.finish()
        let file = try ModelFile(path: q5Path)
        XCTAssertEqual(file.header.version, 2)
        XCTAssertEqual(file.tensor("w5")?.type, .q5)
        try file.verify()

        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: q5Path)))
        bytes[8] = 1  // claims version 1
        XCTAssertThrowsError(try open(resealed(bytes))) { error in
            XCTAssertTrue("\(error)".contains("needs format version 2"), "\(error)")
        }
        var future = original
        future[8] = 4
        XCTAssertThrowsError(try open(resealed(future))) { error in
            guard case ModelFileError.unsupportedVersion(4) = error else { return XCTFail("\(error)") }
        }
    }

    /// A q4k or q6k tensor makes the file version 3 (with or without q5 beside it); such a
    /// tensor in a file that says version 1 or 2 is refused, and so is a K row that is not whole
    /// 256-value super-blocks.
    func testKQuantTensorsNeedVersion3() throws {
        for (type, blockBytes) in [(StorageType.q4k, 144), (.q6k, 210)] {
            let path = dir + "/\(type).gtm"
            let writer = try ModelFileWriter(destination: path, metadata: FormatTests.metadata(),
                                             vocabulary: FormatTests.vocabulary, overwrite: true)
            let k = [UInt8](repeating: 0x22, count: 3 * 2 * blockBytes)
            try k.withUnsafeBytes { try writer.addTensor(name: "wk", type: type, shape: [3, 512], bytes: $0) }
            let q5 = [UInt8](repeating: 0x11, count: 4 * 2 * 22)
            try q5.withUnsafeBytes { try writer.addTensor(name: "w5", type: .q5, shape: [4, 64], bytes: $0) }
            try writer.finish()
            let file = try ModelFile(path: path)
            XCTAssertEqual(file.header.version, 3, "\(type)")
            XCTAssertEqual(file.tensor("wk")?.type, type)
            XCTAssertEqual(file.tensor("wk")?.rowBytes, 2 * blockBytes)
            try file.verify()

            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
            for older: UInt8 in [1, 2] {
                var b = bytes
                b[8] = older
                XCTAssertThrowsError(try open(resealed(b))) { error in
                    XCTAssertTrue("\(error)".contains("wk: storage type \(type) needs format version 3"), "\(error)")
                }
            }
            // Rewrite wk's row length (its last dimension, 512) as 320: not whole super-blocks.
            var b = bytes
            let table = file.header.tensorTable
            let name = Array("wk".utf8)
            let at = try XCTUnwrap((table.lowerBound ..< table.upperBound - name.count).first { Array(b[$0 ..< $0 + 2]) == name })
            let lastDim = at + name.count + 4 + 8  // type, layout, compression, rank; then dims
            XCTAssertEqual(b[lastDim], 0x00)
            XCTAssertEqual(b[lastDim + 1], 0x02)
            putU64(&b, at: lastDim, 320)
            var h = gt_xxh64_state()
            gt_xxh64_reset(&h, 0)
            for r in [file.header.metadata, file.header.tokenizer, table] { b[r].withUnsafeBytes { gt_xxh64_update(&h, $0.baseAddress, $0.count) } }
            putU64(&b, at: 88, gt_xxh64_digest(&h))
            XCTAssertThrowsError(try open(resealed(b))) { error in
                XCTAssertTrue("\(error)".contains("wk: row length 320 is not a whole number of 256-value \(type) blocks"), "\(error)")
            }
        }
    }

    func testTruncatedAtEverySectionBoundary() throws {
        let cuts = [0, 4, 8, 64, 127, 128, header.metadata.upperBound - 1, header.metadata.upperBound,
                    header.tokenizer.upperBound, header.data.lowerBound, header.data.lowerBound + 100,
                    header.data.upperBound, header.tensorTable.lowerBound + 10, original.count - 1]
        for cut in cuts {
            XCTAssertThrowsError(try open(Array(original[..<cut])), "cut at \(cut)") { error in
                XCTAssertTrue(error is ModelFileError, "\(error)")
            }
        }
    }

    func testBitFlipsAreCaught() throws {
        // Header, metadata, tokenizer and table flips fail at open; data flips fail verify()
        // with the tensor's name.
        for offset in [9, 20, header.metadata.lowerBound + 3, header.tokenizer.lowerBound + 9, header.tensorTable.lowerBound + 5] {
            var b = original
            b[offset] ^= 0x10
            XCTAssertThrowsError(try open(b), "flip at \(offset)")
        }
        let file = try ModelFile(path: dir + "/good.gtm")
        for t in file.tensors {
            var b = original
            b[header.data.lowerBound + t.offset + t.storedLength / 2] ^= 0x01
            let bad = try open(b)
            XCTAssertThrowsError(try bad.verify()) { error in
                XCTAssertEqual(error as? ModelFileError, .checksumMismatch(tensor: t.name))
            }
        }
    }

    func testHostileSizesAndOffsets() throws {
        // Section offsets that overflow 64-bit arithmetic or point outside the file.
        for (field, value) in [(16, UInt64.max), (24, UInt64.max - 10), (48, 1 << 62), (64, 3), (72, UInt64(original.count)),
                               (80, UInt64.max)] {
            var b = original
            putU64(&b, at: field, value)
            XCTAssertThrowsError(try open(resealed(b)), "field \(field) = \(value)")
        }
    }

    func testHostileTensorTable() throws {
        // Rewrite the first tensor entry's dimension and offset fields with absurd values; the
        // sections checksum is recomputed so only the table validation stands in the way.
        let tableStart = header.tensorTable.lowerBound
        let nameLength = Int(original[tableStart + 4]) | Int(original[tableStart + 5]) << 8
        let entry = tableStart + 4 + 2 + nameLength
        let dimOffset = entry + 4
        for (at, value) in [(dimOffset, UInt64.max), (dimOffset, 1 << 40), (dimOffset + 8, UInt64.max - 64),
                            (dimOffset + 16, 1 << 63), (dimOffset + 8, UInt64(header.data.count - 8))] {
            var b = original
            putU64(&b, at: at, value)
            var h = gt_xxh64_state()
            gt_xxh64_reset(&h, 0)
            b.withUnsafeBytes { raw in
                for r in [header.metadata, header.tokenizer, header.tensorTable] { gt_xxh64_update(&h, raw.baseAddress! + r.lowerBound, r.count) }
            }
            putU64(&b, at: 88, gt_xxh64_digest(&h))
            XCTAssertThrowsError(try open(resealed(b)), "table field at \(at - entry) = \(value)") { error in
                XCTAssertTrue(error is ModelFileError)
            }
        }
    }

    /// Where entry `index`'s offset field sits in the file (walking the table as FORMAT.md lays
    /// it out: name length, name, type / layout / compression / rank, the dimensions, then the offset).
    func offsetField(ofEntry index: Int) -> Int {
        var at = header.tensorTable.lowerBound + 4
        for i in 0...index {
            let nameLength = Int(original[at]) | Int(original[at + 1]) << 8
            let rank = Int(original[at + 2 + nameLength + 3])
            let offsetField = at + 2 + nameLength + 4 + 8 * rank
            if i == index { return offsetField }
            at = offsetField + 5 * 8  // offset, stored length, length, checksum, stored checksum
        }
        fatalError("unreachable")
    }

    /// A table whose entries are each valid alone: two tensors on the same bytes, or an
    /// uncompressed tensor off the 64-byte alignment, is refused by name.
    func testOverlappingAndMisalignedTensorsAreRefused() throws {
        let good = try open(original)
        XCTAssertGreaterThanOrEqual(good.tensors.count, 3)
        func sealed(_ edit: (inout [UInt8]) -> Void) -> [UInt8] {
            var b = original
            edit(&b)
            var h = gt_xxh64_state()
            gt_xxh64_reset(&h, 0)
            b.withUnsafeBytes { raw in
                for r in [header.metadata, header.tokenizer, header.tensorTable] { gt_xxh64_update(&h, raw.baseAddress! + r.lowerBound, r.count) }
            }
            putU64(&b, at: 88, gt_xxh64_digest(&h))
            return resealed(b)
        }
        // Entry 1 moved onto entry 0's bytes (both aligned, both inside the data section).
        let overlapping = sealed { putU64(&$0, at: offsetField(ofEntry: 1), UInt64(good.tensors[0].offset)) }
        XCTAssertThrowsError(try open(overlapping)) { error in
            XCTAssertTrue("\(error)".contains("overlap"), "\(error)")
        }
        // Entry 0 moved by 8 bytes: still inside the data section, no longer aligned.
        let misaligned = sealed { putU64(&$0, at: offsetField(ofEntry: 0), UInt64(good.tensors[0].offset + 8)) }
        XCTAssertThrowsError(try open(misaligned)) { error in
            XCTAssertTrue("\(error)".contains("misaligned offset"), "\(error)")
        }
        // The helper finds the real fields: writing back each tensor's own offset changes nothing.
        XCTAssertNoThrow(try open(sealed { b in
            for (i, t) in good.tensors.enumerated() { putU64(&b, at: offsetField(ofEntry: i), UInt64(t.offset)) }
        }))
    }

    /// The error says what happened: a damaged header field is a corrupt header (not a section
    /// "outside the file"), a shortened file is truncated, a lengthened one is not.
    func testHeaderDamageTruncationAndExtraBytesAreToldApart() throws {
        var flipped = original
        flipped[40] ^= 0x40  // the tokenizer section's offset, header checksum left as it was
        XCTAssertThrowsError(try open(flipped)) { error in
            guard case .corruptHeader(let what) = error as? ModelFileError else { return XCTFail("\(error)") }
            XCTAssertTrue(what.contains("header checksum"), what)
        }
        XCTAssertThrowsError(try open(Array(original.dropLast(1)))) { error in
            guard case .truncated = error as? ModelFileError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try open(original + [0])) { error in
            guard case .corruptHeader(let what) = error as? ModelFileError else { return XCTFail("\(error)") }
            XCTAssertTrue(what.contains("1 more than its header says"), what)
        }
    }

    func testNotAModelFile() throws {
        XCTAssertThrowsError(try open(Array("hello, world".utf8))) { error in
            guard case .notAModelFile = error as? ModelFileError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try ModelFile(path: dir + "/missing.gtm")) { error in
            guard case .cannotOpen = error as? ModelFileError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try ModelFile(path: dir)) // a folder
    }

    func testCorruptCompressedDataNamesTheTensor() throws {
        let path = dir + "/c.gtm"
        let writer = try ModelFileWriter(destination: path, metadata: FormatTests.metadata(), vocabulary: FormatTests.vocabulary, overwrite: true)
        let data = [UInt8](repeating: 5, count: 1 << 16)
        try writer.beginTensor(name: "t", type: .f32, shape: [256, 64], compression: .zstd)
        let frame = try data.withUnsafeBytes { try ZstdFrames.compressFrame($0, level: 3) }
        try frame.withUnsafeBytes { try writer.append($0) }
        try writer.endTensor(length: data.count, checksum: data.withUnsafeBytes { gt_xxh64($0.baseAddress, $0.count, 0) })
        try writer.finish()
        var b = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let h = try ModelFile(path: path).header
        b[h.data.lowerBound + frame.count / 2] ^= 0xFF
        let bad = try open(b)
        XCTAssertThrowsError(try bad.verify()) { error in
            XCTAssertEqual(error as? ModelFileError, .checksumMismatch(tensor: "t"))
        }
        XCTAssertThrowsError(try ModelLoader.open(path: bad.path, unpack: .memory))
        XCTAssertThrowsError(try ModelLoader.open(path: bad.path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: ModelLoader.siblingPath(for: bad.path)), "no partial sibling")
    }
}
