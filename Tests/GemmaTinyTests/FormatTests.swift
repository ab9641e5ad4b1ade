import Foundation
import GemmaKernels
@testable import GemmaTiny
import XCTest

/// Writing and reading the model file format, including compressed files and unpacking.
final class FormatTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gt-format-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    static func metadata() -> ModelMetadata {
        ModelMetadata(
            config: ModelConfig(architecture: .gemma, vocabSize: 8, hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 1,
                                numAttentionHeads: 2, numKeyValueHeads: 1, headDim: 32, maxPositionEmbeddings: 64,
                                rmsNormEps: 1e-6, ropeTheta: 10000, hiddenActivation: "gelu_pytorch_tanh", embeddingScale: 8),
            tokenizer: TokenizerSettings(model: "bpe", bosId: 2, eosId: 1, padId: 0, unkId: 3, addDummyPrefix: false,
                                         removeExtraWhitespaces: false, escapeWhitespaces: true, byteFallback: true,
                                         normalizer: "identity"),
            quantization: QuantizationInfo(type: .q4, embeddingType: .q8, blockSize: 32, zstdLevel: 3),
            provenance: Provenance(tool: "test", sourceFormat: "test", sourceArchitecture: "GemmaForCausalLM",
                                   sourceDtype: "bfloat16", sourceFiles: [.init(name: "x", size: 1)]))
    }

    static let vocabulary = TokenizerVocabulary(
        pieces: ["<pad>", "<eos>", "<bos>", "<unk>", "a", "b", "▁", "ab"],
        scores: [0, 0, 0, 0, -1, -2, -3, -4],
        types: [.control, .control, .control, .unknown, .normal, .normal, .normal, .normal])

    /// Tensors with compressible and incompressible contents, several types, a multi-frame one.
    static func sampleTensors() -> [(String, StorageType, [Int], [UInt8])] {
        var rng = SplitMix(seed: 42)
        func bytes(_ n: Int, random: Bool) -> [UInt8] {
            (0..<n).map { i in random ? UInt8(truncatingIfNeeded: rng.next()) : UInt8(i % 7) }
        }
        return [
            ("norm", .f32, [64], bytes(256, random: true)),
            ("emb", .q8, [8, 64], bytes(8 * 68, random: true)),
            ("big", .bf16, [2048, 1536], bytes(2048 * 1536 * 2, random: false)),  // 6 MiB: two frames
            ("w", .q4, [128, 64], bytes(128 * 36, random: true)),
        ]
    }

    @discardableResult
    /// `only`: the tensors to compress (all when nil).
    func writeSample(_ path: String, compress: Bool, level: Int = 3, only: Set<String>? = nil) throws -> [(String, StorageType, [Int], [UInt8])] {
        let tensors = Self.sampleTensors()
        let writer = try ModelFileWriter(destination: path, metadata: Self.metadata(), vocabulary: Self.vocabulary, overwrite: true)
        for (name, type, shape, data) in tensors {
            if compress, only?.contains(name) ?? true {
                try writer.beginTensor(name: name, type: type, shape: shape, compression: .zstd)
                for start in stride(from: 0, to: data.count, by: ZstdFrames.frameSize) {
                    let chunk = Array(data[start..<min(data.count, start + ZstdFrames.frameSize)])
                    let frame = try chunk.withUnsafeBytes { try ZstdFrames.compressFrame($0, level: level) }
                    try frame.withUnsafeBytes { try writer.append($0) }
                }
                try writer.endTensor(length: data.count, checksum: data.withUnsafeBytes { gt_xxh64($0.baseAddress, $0.count, 0) })
            } else {
                try data.withUnsafeBytes { try writer.addTensor(name: name, type: type, shape: shape, bytes: $0) }
            }
        }
        try writer.finish()
        return tensors
    }

    func testUncompressedRoundTrip() throws {
        let path = dir + "/m.gtm"
        let tensors = try writeSample(path, compress: false)
        let file = try ModelFile(path: path)
        XCTAssertEqual(file.metadata, Self.metadata())
        XCTAssertEqual(file.vocabulary, Self.vocabulary)
        XCTAssertFalse(file.isCompressed)
        XCTAssertEqual(file.tensors.map(\.name), tensors.map(\.0))
        for (name, type, shape, data) in tensors {
            let t = try XCTUnwrap(file.tensor(name))
            XCTAssertEqual(t.type, type)
            XCTAssertEqual(t.shape, shape)
            let bytes = try file.data(t)
            XCTAssertEqual(Array(bytes), data)
            XCTAssertEqual(Int(bitPattern: bytes.baseAddress!) % FileHeader.tensorAlignment, 0, "\(name) is 64-byte aligned")
        }
        XCTAssertNoThrow(try file.verify())
    }

    func testCompressedFileUnpacksToSiblingOnceAndInMemory() throws {
        let path = dir + "/c.gtm"
        let tensors = try writeSample(path, compress: true)
        let compressed = try ModelFile(path: path)
        XCTAssertTrue(compressed.isCompressed)
        XCTAssertLessThan(compressed.fileSize, 6 << 20, "the repetitive tensor compresses")
        XCTAssertThrowsError(try compressed.data(compressed.tensor("big")!))
        XCTAssertNoThrow(try compressed.verify())

        var notices: [String] = []
        let unpacked = try ModelLoader.open(path: path, notice: { notices.append($0) })
        XCTAssertEqual(unpacked.path, ModelLoader.siblingPath(for: path))
        XCTAssertEqual(notices.count, 1)
        for (name, _, _, data) in tensors { XCTAssertEqual(Array(try unpacked.data(unpacked.tensor(name)!)), data) }

        // Second start maps the sibling without unpacking again.
        notices = []
        let again = try ModelLoader.open(path: path, notice: { notices.append($0) })
        XCTAssertEqual(again.path, unpacked.path)
        XCTAssertEqual(notices, [])

        let memory = try ModelLoader.open(path: path, unpack: .memory)
        for (name, _, _, data) in tensors { XCTAssertEqual(Array(try memory.data(memory.tensor(name)!)), data) }
        XCTAssertGreaterThanOrEqual(memory.decompressedBytes, compressed.tensorBytes)
        XCTAssertEqual(unpacked.decompressedBytes, 0)
    }

    /// A file whose compressed tensors are a small share (what `--compress auto` writes) is
    /// mapped as it is: its few compressed tensors go to memory, no sibling is written, and the
    /// uncompressed ones are not copied, in either unpack mode.
    func testMostlyUncompressedFileIsMappedWithoutSibling() throws {
        let path = dir + "/mixed.gtm"
        let tensors = try writeSample(path, compress: true, only: ["norm", "emb", "w"])
        let file = try ModelFile(path: path)
        XCTAssertTrue(file.isCompressed)
        XCTAssertEqual(file.compressedTensorBytes, 256 + 8 * 68 + 128 * 36)
        XCTAssertTrue(ModelLoader.decompressesIntoMemory(file, mode: .sibling))

        var notices: [String] = []
        let opened = try ModelLoader.open(path: path, notice: { notices.append($0) })
        XCTAssertEqual(notices, [])
        XCTAssertEqual(opened.path, path)
        XCTAssertFalse(FileManager.default.fileExists(atPath: ModelLoader.siblingPath(for: path)))
        XCTAssertFalse(opened.isCompressed)
        XCTAssertEqual(opened.decompressedBytes, alignUp(256, 64) + alignUp(8 * 68, 64) + 128 * 36, "only the compressed tensors")
        for (name, _, _, data) in tensors {
            let bytes = try opened.data(opened.tensor(name)!)
            XCTAssertEqual(Array(bytes), data, name)
            XCTAssertEqual(Int(bitPattern: bytes.baseAddress!) % FileHeader.tensorAlignment, 0, "\(name) is 64-byte aligned")
        }
        XCTAssertNoThrow(try opened.verify())
        XCTAssertEqual(try ModelLoader.open(path: path, unpack: .memory).decompressedBytes, opened.decompressedBytes)
        XCTAssertEqual(try MemoryFit(file: file, session: .init(), unpack: .memory).weightsInAnonymousMemory, false)

        // The same tensors with the large one compressed too: then a sibling, as before.
        let mostly = dir + "/mostly.gtm"
        try writeSample(mostly, compress: true, only: ["big"])
        XCTAssertFalse(ModelLoader.decompressesIntoMemory(try ModelFile(path: mostly), mode: .sibling))
        XCTAssertTrue(ModelLoader.decompressesIntoMemory(try ModelFile(path: mostly), mode: .memory))
        XCTAssertEqual(try ModelLoader.open(path: mostly).path, ModelLoader.siblingPath(for: mostly))
    }

    func testStaleSiblingIsRebuilt() throws {
        let path = dir + "/s.gtm"
        try writeSample(path, compress: true, level: 1)
        _ = try ModelLoader.open(path: path)
        try writeSample(path, compress: true, level: 5)  // a different file under the same name
        var notices: [String] = []
        let reopened = try ModelLoader.open(path: path, notice: { notices.append($0) })
        XCTAssertEqual(notices.count, 1, "the old sibling no longer matches and is replaced")
        XCTAssertEqual(reopened.metadata.unpackedFrom?.fileLength, try ModelFile(path: path).fileSize)
    }

    func testWriterRefusesToOverwriteAndLeavesNothingWhenDiscarded() throws {
        let path = dir + "/o.gtm"
        try writeSample(path, compress: false)
        XCTAssertThrowsError(try ModelFileWriter(destination: path, metadata: Self.metadata(), vocabulary: Self.vocabulary, overwrite: false))
        let other = dir + "/never.gtm"
        do {
            let writer = try ModelFileWriter(destination: other, metadata: Self.metadata(), vocabulary: Self.vocabulary, overwrite: false)
            try [UInt8](repeating: 1, count: 256).withUnsafeBytes { try writer.addTensor(name: "x", type: .f32, shape: [64], bytes: $0) }
            writer.discard()
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["o.gtm"])
    }
}
