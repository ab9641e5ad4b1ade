import Foundation
import GemmaKernels
import GemmaQuantizeKernels
@testable import GemmaTiny
import XCTest

/// Loading, validation, kernels and sessions.
final class ModelTests: XCTestCase {
    func temp(_ name: String) -> String { ModelFixtures.tempDir + "/\(UUID().uuidString)-\(name)" }

    func testModelLoadResolvesEveryWeight() throws {
        let model = try ModelFixtures.model("tiny-gemma", .q8)
        let c = model.config
        XCTAssertEqual(model.architecture, .gemma)
        XCTAssertEqual(model.layers.count, c.numHiddenLayers)
        XCTAssertEqual(model.embedding.rows, c.vocabSize)
        XCTAssertEqual(model.embedding.cols, c.hiddenSize)
        for l in model.layers {
            XCTAssertEqual(l.qProj.rows, c.numAttentionHeads * c.headDim)
            XCTAssertEqual(l.kProj.rows, c.numKeyValueHeads * c.headDim)
            XCTAssertEqual(l.oProj.cols, c.numAttentionHeads * c.headDim)
            XCTAssertEqual(l.gateProj.rows, c.intermediateSize)
            XCTAssertEqual(l.downProj.cols, c.intermediateSize)
            XCTAssertEqual(l.inputNorm.scale.count, c.hiddenSize)
            XCTAssertEqual(l.qProj.type, .q8)
        }
        XCTAssertEqual(model.finalNorm.scale.count, c.hiddenSize)
        // Norm weights are stored raw (w); the model holds 1 + w.
        let file = model.file
        let raw = try file.data(file.tensor("model.norm.weight")!)
        let w0 = raw.loadUnaligned(as: Float.self)
        XCTAssertEqual(model.finalNorm.scale[0], 1 + w0)
        XCTAssertGreaterThan(model.parameterCount, c.vocabSize * c.hiddenSize)
    }

    func testModelUnsupportedArchitectureIsAClearError() throws {
        // As a newer build might write it: an architecture ModelConfig cannot hold, so the JSON is edited.
        let path = temp("gemma4.gtm")
        try ModelFileRewriter.replaceInMetadata(try ModelFixtures.convertedPath("tiny-gemma2", .bf16), to: path,
                                                "\"architecture\":\"gemma2\"", with: "\"architecture\":\"gemma4\"")
        XCTAssertThrowsError(try GemmaModel.load(path: path)) { error in
            XCTAssertEqual(error as? ModelError, .unsupportedArchitecture("gemma4"))
            XCTAssertTrue("\(error)".contains("gemma4"))
        }
        // Opening the file says the same.
        XCTAssertThrowsError(try ModelFile(path: path)) { error in
            XCTAssertEqual(error as? ModelFileError, .unsupportedArchitecture("gemma4"))
            XCTAssertEqual("\(error)", "unsupported architecture \"gemma4\": this build runs Gemma 1, 2 and 3 text models (\"gemma\", \"gemma2\", \"gemma3\")")
        }
    }

    /// Metadata values their fields cannot hold, or of the wrong type, are named: Foundation
    /// alone would call an out-of-range number "not valid JSON".
    func testMetadataValueProblemsNameTheField() throws {
        let source = try ModelFixtures.convertedPath("tiny-gemma", .bf16)
        let cases = [("\"vocab_size\":2048", "\"vocab_size\":9e99", "config.vocab_size: 9e+99 is out of range"),
                     ("\"rms_norm_eps\":1e-06", "\"rms_norm_eps\":\"abc\"", "config.rms_norm_eps: expected Double"),
                     ("\"num_hidden_layers\":2", "\"num_hidden_layerz\":2", "missing config.num_hidden_layers")]
        for (old, new, expected) in cases {
            let path = temp("metadata-\(UUID().uuidString).gtm")
            try ModelFileRewriter.replaceInMetadata(source, to: path, old, with: new)
            XCTAssertThrowsError(try ModelFile(path: path)) { error in
                XCTAssertEqual("\(error)", "invalid model metadata: " + expected)
            }
        }
    }

    func testModelUnsupportedActivationIsAClearError() throws {
        let path = temp("relu.gtm")
        try ModelFileRewriter.rewrite(try ModelFixtures.convertedPath("tiny-gemma", .bf16), to: path,
                                      metadata: { $0.config.hiddenActivation = "relu" })
        XCTAssertThrowsError(try GemmaModel.load(path: path)) { error in
            guard case .unsupportedConfiguration = error as? ModelError else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("relu"))
        }
    }

    func testModelMissingTensorIsAClearError() throws {
        let path = temp("missing.gtm")
        try ModelFileRewriter.rewrite(try ModelFixtures.convertedPath("tiny-gemma", .bf16), to: path,
                                      tensor: { $0.name == "model.layers.1.mlp.up_proj.weight" ? nil : ($0.name, $0.shape) })
        XCTAssertThrowsError(try GemmaModel.load(path: path)) { error in
            XCTAssertEqual(error as? ModelError, .file(.missingTensor("model.layers.1.mlp.up_proj.weight")))
            XCTAssertEqual("\(error)", "model file has no tensor model.layers.1.mlp.up_proj.weight")
        }
    }

    func testModelWrongShapeIsAClearError() throws {
        let path = temp("shape.gtm")
        try ModelFileRewriter.rewrite(try ModelFixtures.convertedPath("tiny-gemma", .f32), to: path,
                                      tensor: { $0.name == "model.layers.0.self_attn.k_proj.weight" ? ($0.name, [32, 64]) : ($0.name, $0.shape) })
        XCTAssertThrowsError(try GemmaModel.load(path: path)) { error in
            XCTAssertEqual(error as? ModelError, .file(.tensorShape(tensor: "model.layers.0.self_attn.k_proj.weight",
                                                                    expected: [16, 64], found: [32, 64])))
        }
    }

    func testModelNotAModelFileAndMissingFile() throws {
        let path = temp("text.gtm")
        try "hello, not a model".write(toFile: path, atomically: false, encoding: .utf8)
        XCTAssertThrowsError(try GemmaModel.load(path: path)) { error in
            guard case .file = error as? ModelError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try GemmaModel.load(path: temp("absent.gtm"))) { error in
            guard case .file(.cannotOpen) = error as? ModelError else { return XCTFail("\(error)") }
        }
    }

    /// A zstd-compressed file is unpacked (sibling or memory) and gives the same logits.
    func testModelCompressedFileUnpacksAndMatches() throws {
        let plain = try ModelFixtures.model("tiny-gemma", .q8)
        let compressed = try ModelFixtures.convertedPath("tiny-gemma", .q8, compression: .always)
        XCTAssertTrue(try ModelFile(path: compressed).isCompressed)
        var notices: [String] = []
        let sibling = try GemmaModel.load(path: compressed, unpack: .sibling, notice: { notices.append($0) })
        XCTAssertTrue(FileManager.default.fileExists(atPath: ModelLoader.siblingPath(for: compressed)))
        XCTAssertFalse(notices.isEmpty)
        let memory = try GemmaModel.load(path: compressed, unpack: .memory)
        let ids = [2, 591, 294, 304, 302, 304, 1592]
        let reference = try InferenceSessionLogits(model: plain, kernels: ScalarKernels()).run(ids)
        XCTAssertEqual(try InferenceSessionLogits(model: sibling, kernels: ScalarKernels()).run(ids), reference)
        XCTAssertEqual(try InferenceSessionLogits(model: memory, kernels: ScalarKernels()).run(ids), reference)
    }

    func testModelContextLengthIsValidated() throws {
        let model = try ModelFixtures.model("tiny-gemma", .bf16)
        let maximum = model.config.maxPositionEmbeddings
        XCTAssertEqual(try InferenceSession(model: model).contextLength, maximum)
        XCTAssertThrowsError(try InferenceSession(model: model, contextLength: 0)) {
            XCTAssertEqual($0 as? ModelError, .invalidContextLength(requested: 0, maximum: maximum))
        }
        XCTAssertThrowsError(try InferenceSession(model: model, contextLength: maximum + 1)) {
            XCTAssertEqual($0 as? ModelError, .invalidContextLength(requested: maximum + 1, maximum: maximum))
        }
    }

    func testModelSessionContextFullAndBadToken() throws {
        let model = try ModelFixtures.model("tiny-gemma", .bf16)
        let s = try InferenceSession(model: model, contextLength: 3)
        XCTAssertThrowsError(try s.forward(token: model.config.vocabSize)) {
            XCTAssertEqual($0 as? InferenceError, .tokenOutOfRange(token: model.config.vocabSize, vocabularySize: model.config.vocabSize))
        }
        XCTAssertThrowsError(try s.forward(token: -1))
        XCTAssertEqual(s.position, 0)
        for t in [2, 10, 11] { try s.forward(token: t) }
        XCTAssertEqual(s.remainingContext, 0)
        XCTAssertThrowsError(try s.forward(token: 12)) {
            XCTAssertEqual($0 as? InferenceError, .contextFull(contextLength: 3))
        }
        XCTAssertThrowsError(try s.prefill([1, 2]))
        XCTAssertEqual(s.position, 3)
    }

    /// Rewinding and re-feeding gives the same logits; logits are computed only when asked.
    func testModelSessionRewindAndPrefill() throws {
        let model = try ModelFixtures.model("tiny-gemma", .f32)
        let s = try InferenceSession(model: model, contextLength: 16)
        let ids = [2, 591, 294, 304, 302, 304, 1592]
        for t in ids { try s.forward(token: t) }
        let full = Array(s.logits)
        s.rewind(to: 3)
        XCTAssertFalse(s.hasLogits)
        try s.prefill(ids[3...])
        XCTAssertTrue(s.hasLogits)
        XCTAssertEqual(Array(s.logits), full)
        s.reset()
        try s.prefill(ids, computeLogits: false)
        XCTAssertFalse(s.hasLogits)
        XCTAssertEqual(s.position, ids.count)
    }

    /// Many sessions share one model, on several threads at once.
    func testModelSessionsShareOneModelAcrossThreads() throws {
        let model = try ModelFixtures.model("tiny-gemma-mha", .q4)
        let ids = [2, 591, 294, 304, 302, 304, 1592, 100, 200]
        let reference = try InferenceSessionLogits(model: model, kernels: ScalarKernels()).run(ids)
        let results = Mutex3<[[Float]]?>(Array(repeating: nil, count: 4))
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            let rows = try? InferenceSessionLogits(model: model, kernels: ScalarKernels()).run(ids)
            results.set(i, rows)
        }
        for r in results.values { XCTAssertEqual(r, reference) }
    }

    /// Every storage type: ScalarKernels and the threaded kernels compute W x exactly as the
    /// dequantized rows dotted with x (up to f32 summation order), batched or not.
    func testModelMatvecKernelsAllTypes() throws {
        let rows = 67
        var rng = SystemRandomNumberGenerator()
        let threaded = ThreadedScalarKernels(threads: 3)
        threaded.minimumParallelWork = 0
        for type in StorageType.allCases {
            // Rows of whole blocks: 3 of 32, or 2 super-blocks of 256 for the K types.
            let cols = type.blockSize > 32 ? 512 : 96
            let weights = (0..<(rows * cols)).map { _ in Float.random(in: -1...1, using: &rng) }
            let x = (0..<(cols * 3)).map { _ in Float.random(in: -1...1, using: &rng) }
            let rowBytes = try XCTUnwrap(type.rowBytes(cols), "\(type)")
            var stored = [UInt8](repeating: 0, count: rows * rowBytes)
            stored.withUnsafeMutableBytes { out in
                weights.withUnsafeBufferPointer { w in
                    for r in 0..<rows { gt_quantize_row(Int32(type.rawValue), w.baseAddress! + r * cols, cols, out.baseAddress! + r * rowBytes) }
                }
            }
            stored.withUnsafeBytes { bytes in
                let m = WeightMatrix(name: "w", type: type, rows: rows, cols: cols, base: bytes.baseAddress!)
                var expected = [Float](repeating: 0, count: rows)
                var row = [Float](repeating: 0, count: cols)
                for r in 0..<rows {
                    m.dequantizeRow(r, into: &row)
                    var s: Double = 0
                    for c in 0..<cols { s += Double(row[c]) * Double(x[c]) }
                    expected[r] = Float(s)
                }
                for kernels in [ScalarKernels() as any MatmulKernels, threaded] {
                    var y = [Float](repeating: .nan, count: rows)
                    kernels.matvec(m, x, &y)
                    for r in 0..<rows { XCTAssertEqual(y[r], expected[r], accuracy: 1e-4, "\(type) \(kernels.name) row \(r)") }
                    var batch = [Float](repeating: .nan, count: rows * 3)
                    kernels.matmul(m, x, xStride: cols, &batch, yStride: rows, count: 3)
                    XCTAssertEqual(Array(batch[0..<rows]), y)
                    var single = [Float](repeating: 0, count: rows)
                    x.withUnsafeBufferPointer { kernels.matvec(m, $0.baseAddress! + 2 * cols, &single) }
                    XCTAssertEqual(Array(batch[(2 * rows)...]), single)
                }
            }
        }
        XCTAssertEqual(threaded.name, "scalar x3 threads")
        // The default is the SIMD kernel set on this CPU's best path, unless overridden.
        XCTAssertEqual(makeDefaultKernels(threads: 1).name, SIMDKernels(threads: 1).name)
        XCTAssertTrue(makeDefaultKernels(threads: 1) is SIMDKernels)
    }

    /// The worker pool runs every part exactly once per job, many jobs in a row.
    func testModelWorkerPool() {
        let pool = WorkerPool(threads: 4)
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 4)
        defer { counts.deallocate() }
        counts.initialize(repeating: 0, count: 4)
        nonisolated(unsafe) let c = counts
        for _ in 0..<2000 { pool.run { c[$0] += 1 } }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: counts, count: 4)), [2000, 2000, 2000, 2000])
        let single = WorkerPool(threads: 1)
        var ran = 0
        single.run { ran += $0 + 1 }
        XCTAssertEqual(ran, 1)
    }
}

/// A tiny lock-protected array for collecting results from concurrent work.
final class Mutex3<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [T]
    init(_ values: [T]) { storage = values }
    func set(_ i: Int, _ v: T) { lock.lock(); storage[i] = v; lock.unlock() }
    var values: [T] { lock.lock(); defer { lock.unlock() }; return storage }
}
