import Foundation
@testable import GemmaConvert
import GemmaKernels
import GemmaQuantizeKernels
import GemmaTiny
import XCTest

/// Convert synthetic checkpoints, open the result, dequantize, and compare with the source.
final class ConverterRoundTripTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gt-convert-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Source values as the checkpoint holds them (rounded to its dtype).
    func sourceValues(_ t: SyntheticCheckpoint.Tensor) -> [Float] {
        switch t.dtype {
        case "F32": return t.values
        case "F16": return t.values.map { gt_f16_to_f32(gt_f32_to_f16($0)) }
        default: return t.values.map { gt_bf16_to_f32(gt_f32_to_bf16($0)) }
        }
    }

    func dequantized(_ file: ModelFile, _ name: String) throws -> [Float] {
        let t = try XCTUnwrap(file.tensor(name))
        let bytes = try file.data(t)
        var out = [Float](repeating: .nan, count: t.elementCount)
        out.withUnsafeMutableBufferPointer { o in
            for r in 0..<t.rowCount {
                gt_dequantize_row(Int32(t.type.rawValue), bytes.baseAddress! + r * t.rowBytes, t.rowLength, o.baseAddress! + r * t.rowLength)
            }
        }
        return out
    }

    func relativeRMS(_ x: [Float], _ y: [Float]) -> Double {
        var e = 0.0, r = 0.0
        gt_error_sums(x, y, x.count, &e, &r)
        return (e / max(r, 1e-30)).squareRoot()
    }

    func convertAndCheck(_ checkpoint: SyntheticCheckpoint, options: ConversionOptions, bound: Double,
                         line: UInt = #line) throws -> (ConversionSummary, ModelFile) {
        let folder = dir + "/ckpt-\(UUID().uuidString)"
        let tensors = try checkpoint.write(to: folder).filter { !TensorPlan.isIgnorable($0.name) }
        let output = dir + "/out-\(UUID().uuidString).gtm"
        let summary = try Converter.convert(checkpoint: folder, output: output, options: options)
        let file = try ModelLoader.open(path: output, unpack: .memory)
        XCTAssertEqual(file.tensors.count, tensors.count, line: line)
        for t in tensors {
            let expected = sourceValues(t)
            let got = try dequantized(file, t.name)
            let info = file.tensor(t.name)!
            if t.shape.count == 1 || info.type == .f32 || info.type == .bf16 && t.dtype == "BF16" {
                XCTAssertEqual(got, expected, "\(t.name) as \(info.type) must be exact", line: line)
            } else {
                let err = relativeRMS(expected, got)
                XCTAssertLessThan(err, bound, "\(t.name) as \(info.type): relative RMS \(err)", line: line)
            }
        }
        return (summary, file)
    }

    /// The q4 policy (the default before q4k): k/v/down projections at q8, the other matrices
    /// q4, the embedding q8, norms f32; --pure: every matrix but the embedding q4; other types
    /// have no exceptions.
    func testQ4PerTensorPolicy() throws {
        func types(_ options: ConversionOptions) throws -> [String: StorageType] {
            let (summary, file) = try convertAndCheck(SyntheticCheckpoint(), options: options, bound: 0.12)
            _ = summary
            return Dictionary(uniqueKeysWithValues: file.tensors.map { ($0.name, $0.type) })
        }
        let policy = try types(ConversionOptions(type: .q4, threads: 2))
        let pure = try types(ConversionOptions(type: .q4, threads: 2, pure: true))
        let q8 = try types(ConversionOptions(type: .q8, threads: 2))
        for (name, type) in policy {
            let sensitive = QuantizationPolicy.sensitiveMatrices.contains { name.hasSuffix($0) }
            if name == "model.embed_tokens.weight" {
                XCTAssertEqual(type, .q8, name)
                XCTAssertEqual(pure[name], .q8, name)
            } else if name.hasSuffix("norm.weight") {
                XCTAssertEqual(type, .f32, name)
            } else {
                XCTAssertEqual(type, sensitive ? .q8 : .q4, name)
                XCTAssertEqual(pure[name], .q4, name)
            }
            if !name.hasSuffix("norm.weight") { XCTAssertEqual(q8[name], .q8, name) }
        }
        XCTAssertTrue(policy.keys.contains { $0.hasSuffix("mlp.down_proj.weight") })
    }

    func testEveryStorageTypeRoundTrips() throws {
        for (type, bound) in [(StorageType.f32, 0.0), (.bf16, 0.0), (.q8, 0.01), (.q5, 0.06), (.q4, 0.12)] {
            for compress in [true, false] {
                let (summary, file) = try convertAndCheck(SyntheticCheckpoint(), options: ConversionOptions(
                    type: type, embeddingType: type, compression: compress ? .always : .never, threads: 2, pure: true), bound: bound)
                XCTAssertEqual(file.metadata.quantization.type, type)
                XCTAssertEqual(summary.bitsPerWeight, type.bitsPerWeight, accuracy: 0.1 + (type.isQuantized ? 0.2 : 0), "\(type)")
                XCTAssertEqual(try ModelFile(path: summary.outputPath).isCompressed, compress)
            }
        }
    }

    /// `--compress auto` (the default) stores a tensor compressed only when zstd shrinks its
    /// first frame by 1/8: the norms (f32 widened from bf16: half their bytes are zero) and a
    /// matrix of zeros, not the quantized random matrices. The file then opens without a
    /// sibling, with the bytes of an uncompressed conversion.
    func testAutoCompressionStoresOnlyWhatZstdShrinks() throws {
        var checkpoint = SyntheticCheckpoint()
        let zeroed = "model.layers.0.mlp.up_proj.weight"
        checkpoint.editTensors = { tensors in
            let i = tensors.firstIndex { $0.name == zeroed }!
            tensors[i].values = [Float](repeating: 0, count: tensors[i].values.count)
        }
        let folder = dir + "/ckpt"
        try checkpoint.write(to: folder)
        var summaries: [CompressionChoice: ConversionSummary] = [:]
        for choice in CompressionChoice.allCases {
            summaries[choice] = try Converter.convert(checkpoint: folder, output: dir + "/\(choice).gtm", options: ConversionOptions(
                type: .q8, embeddingType: .q8, compression: choice, threads: 2, pure: true))
        }
        let auto = try ModelFile(path: dir + "/auto.gtm")
        let plain = try ModelFile(path: dir + "/never.gtm")
        XCTAssertEqual(summaries[.auto]!.tensors.map(\.compressed), auto.tensors.map { $0.compression == .zstd })
        for t in auto.tensors {
            let shouldCompress = t.shape.count == 1 || t.name == zeroed
            XCTAssertEqual(t.compression == .zstd, shouldCompress, t.name)
        }
        XCTAssertEqual(summaries[.always]!.compressedTensorCount, auto.tensors.count)
        XCTAssertEqual(summaries[.never]!.compressedTensorCount, 0)
        XCTAssertLessThan(auto.fileSize, plain.fileSize)
        XCTAssertGreaterThan(auto.fileSize, try ModelFile(path: dir + "/always.gtm").fileSize)

        let opened = try ModelLoader.open(path: auto.path)
        XCTAssertEqual(opened.path, auto.path, "mapped as it is")
        XCTAssertFalse(FileManager.default.fileExists(atPath: ModelLoader.siblingPath(for: auto.path)))
        for t in plain.tensors {
            XCTAssertTrue(try opened.data(opened.tensor(t.name)!).elementsEqual(plain.data(t)), t.name)
        }
    }

    /// When most tensors would shrink (here every matrix is zero), `auto` still compresses no more
    /// than the runtime decompresses into memory, so the file is mapped without a sibling.
    func testAutoCompressionStaysWithinWhatIsDecompressedIntoMemory() throws {
        var checkpoint = SyntheticCheckpoint()
        checkpoint.editTensors = { tensors in
            for i in tensors.indices where tensors[i].shape.count == 2 {
                tensors[i].values = [Float](repeating: 0, count: tensors[i].values.count)
            }
        }
        let folder = dir + "/ckpt"
        try checkpoint.write(to: folder)
        var files: [ModelFile] = []
        for threads in [1, 3] {
            _ = try Converter.convert(checkpoint: folder, output: dir + "/auto-\(threads).gtm", options: ConversionOptions(
                type: .q8, embeddingType: .q8, compression: .auto, threads: threads, pure: true))
            files.append(try ModelFile(path: dir + "/auto-\(threads).gtm"))
        }
        let file = files[0]
        let compressed = file.tensors.filter { $0.compression == .zstd }
        let matrices = file.tensors.filter { $0.shape.count == 2 }
        XCTAssertGreaterThan(compressed.filter { $0.shape.count == 2 }.count, 0, "the zero matrices that fit are compressed")
        XCTAssertTrue(matrices.contains { $0.compression == .none }, "the rest are stored as they are")
        XCTAssertLessThanOrEqual(Double(file.compressedTensorBytes), ModelLoader.inMemoryShare * Double(file.tensorBytes))
        XCTAssertTrue(ModelLoader.decompressesIntoMemory(file, mode: .sibling))
        XCTAssertEqual(file.tensors.map(\.compression), files[1].tensors.map(\.compression), "the same choice on 1 and 3 threads")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: file.path)), try Data(contentsOf: URL(fileURLWithPath: files[1].path)))

        let opened = try ModelLoader.open(path: file.path)
        XCTAssertEqual(opened.path, file.path, "mapped as it is")
        XCTAssertFalse(FileManager.default.fileExists(atPath: ModelLoader.siblingPath(for: file.path)))
        _ = try Converter.convert(checkpoint: folder, output: dir + "/never.gtm", options: ConversionOptions(
            type: .q8, embeddingType: .q8, compression: .never, threads: 2, pure: true))
        let plain = try ModelFile(path: dir + "/never.gtm")
        for t in plain.tensors {
            XCTAssertTrue(try opened.data(opened.tensor(t.name)!).elementsEqual(plain.data(t)), t.name)
        }
    }

    func testQ4KeepsEmbeddingAtQ8AndNormsAtF32() throws {
        let (summary, file) = try convertAndCheck(SyntheticCheckpoint(), options: ConversionOptions(type: .q4, report: true), bound: 0.12)
        XCTAssertEqual(file.tensor("model.embed_tokens.weight")?.type, .q8)
        XCTAssertEqual(file.tensor("model.layers.0.mlp.up_proj.weight")?.type, .q4)
        XCTAssertEqual(file.tensor("model.norm.weight")?.type, .f32)
        XCTAssertEqual(file.metadata.quantization.embeddingType, .q8)
        let upError = try XCTUnwrap(summary.tensors.first { $0.name == "model.layers.0.mlp.up_proj.weight" }?.relativeRMSError)
        XCTAssertGreaterThan(upError, 0.01)
        XCTAssertLessThan(upError, 0.12)
        XCTAssertEqual(summary.tensors.first { $0.name == "model.norm.weight" }?.relativeRMSError, 0)
    }

    func testSourceDtypesAndEmbeddingScale() throws {
        for (dtype, scale) in [("BF16", Float(8)), ("F16", 8), ("F32", 8)] {
            var c = SyntheticCheckpoint()
            c.dtype = dtype
            let (_, file) = try convertAndCheck(c, options: ConversionOptions(type: .f32), bound: 0)
            XCTAssertEqual(file.metadata.config.embeddingScale, scale)
            XCTAssertEqual(file.metadata.provenance.sourceDtype, ["BF16": "bfloat16", "F16": "float16", "F32": "float32"][dtype])
        }
        XCTAssertEqual(HFConfig.embeddingScale(hiddenSize: 2048, dtype: "bfloat16"), 45.25)
        XCTAssertEqual(HFConfig.embeddingScale(hiddenSize: 3072, dtype: "bfloat16"), 55.5)
        XCTAssertEqual(HFConfig.embeddingScale(hiddenSize: 2048, dtype: "float32"), Float(2048).squareRoot())
    }

    func testShardedAndSingleFileGiveTheSameModel() throws {
        let options = ConversionOptions(type: .q8, compression: .never)
        var sharded = SyntheticCheckpoint()
        sharded.shards = 3
        let (_, a) = try convertAndCheck(SyntheticCheckpoint(), options: options, bound: 0.01)
        let (_, b) = try convertAndCheck(sharded, options: options, bound: 0.01)
        XCTAssertEqual(a.tensors.map(\.checksum), b.tensors.map(\.checksum))
        XCTAssertEqual(b.metadata.provenance.sourceFiles.filter { $0.name.hasSuffix(".safetensors") }.count, 3)
    }

    func testBothConfigStylesGiveTheSameConfig() throws {
        var old = SyntheticCheckpoint()
        old.style = .transformers4
        let (_, a) = try convertAndCheck(old, options: ConversionOptions(type: .bf16), bound: 0)
        let (_, b) = try convertAndCheck(SyntheticCheckpoint(), options: ConversionOptions(type: .bf16), bound: 0)
        XCTAssertEqual(a.metadata.config, b.metadata.config)
        XCTAssertEqual(a.metadata.config.hiddenActivation, "gelu_pytorch_tanh")
        XCTAssertEqual(a.metadata.config.ropeTheta, 10000)
    }

    func testMultiHeadAttentionShapes() throws {
        var c = SyntheticCheckpoint()
        c.kvHeads = 4
        let (_, file) = try convertAndCheck(c, options: ConversionOptions(type: .q8), bound: 0.01)
        XCTAssertEqual(file.tensor("model.layers.0.self_attn.k_proj.weight")?.shape, [64, 64])
    }

    func testRowsNotWholeBlocksFallBackToBF16WithANotice() throws {
        var c = SyntheticCheckpoint()
        c.intermediate = 80  // down_proj rows are 80 long: not a multiple of 32
        let (summary, file) = try convertAndCheck(c, options: ConversionOptions(type: .q4), bound: 0.12)
        XCTAssertEqual(file.tensor("model.layers.0.mlp.down_proj.weight")?.type, .bf16)
        XCTAssertEqual(file.tensor("model.layers.0.mlp.up_proj.weight")?.type, .q4)
        XCTAssertTrue(summary.notices.contains { $0.contains("down_proj") && $0.contains("bf16") }, "\(summary.notices)")
    }

    func testIgnorableTiedHeadIsSkippedWithANotice() throws {
        var c = SyntheticCheckpoint()
        c.editTensors = { list in
            var head = list[0]
            head.name = "lm_head.weight"
            list.append(head)
        }
        let (summary, file) = try convertAndCheck(c, options: ConversionOptions(type: .q8), bound: 0.01)
        XCTAssertNil(file.tensor("lm_head.weight"))
        XCTAssertTrue(summary.notices.contains { $0.contains("lm_head.weight") })
    }
}
