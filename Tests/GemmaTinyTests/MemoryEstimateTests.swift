import Foundation
import GemmaConvert
@testable import GemmaTiny
import XCTest

/// `MemoryEstimate` against the formula and against what a session really allocates, and
/// `MemoryFit`'s verdict and advice for given amounts of memory.
final class MemoryEstimateTests: XCTestCase {
    /// The Gemma 2B shape (docs/BENCHMARKS.md): 18 layers, 1 KV head of 256, vocab 256000.
    static let gemma2B = ModelConfig(architecture: .gemma, vocabSize: 256_000, hiddenSize: 2048, intermediateSize: 16384,
                                     numHiddenLayers: 18, numAttentionHeads: 8, numKeyValueHeads: 1, headDim: 256,
                                     maxPositionEmbeddings: 8192, rmsNormEps: 1e-6, ropeTheta: 10000,
                                     hiddenActivation: "gelu_pytorch_tanh", embeddingScale: 45.25)

    /// layers x KV heads x head dim x ctx x 2 (keys and values) x 4 bytes (f32).
    func kvFormula(_ c: ModelConfig, ctx: Int) -> Int {
        c.numHiddenLayers * c.numKeyValueHeads * c.headDim * ctx * 2 * 4
    }

    func testKVCacheOfThe2BShape() throws {
        let c = Self.gemma2B
        for ctx in [1, 512, 2048, 8192] {
            let e = try MemoryEstimate(config: c, weightBytes: 0, vocabularyBytes: 0, session: .init(contextLength: ctx, cacheType: .f32))
            XCTAssertEqual(e.kvCacheBytes, kvFormula(c, ctx: ctx), "ctx \(ctx)")
            XCTAssertEqual(e.contextLength, ctx)
        }
        // nil and anything above the maximum mean the maximum (8192: 288 MiB).
        let full = try MemoryEstimate(config: c, weightBytes: 7, vocabularyBytes: 0, session: .init(contextLength: nil, cacheType: .f32))
        XCTAssertEqual(full.contextLength, 8192)
        XCTAssertEqual(full.kvCacheBytes, kvFormula(c, ctx: 8192))
        let capped = try MemoryEstimate(config: c, weightBytes: 7, vocabularyBytes: 0, session: .init(contextLength: 100_000, cacheType: .f32))
        XCTAssertEqual(capped, full)
        XCTAssertEqual(full.totalBytes, 7 + full.kvCacheBytes + full.activationBytes + full.runtimeBytes)
        // Batch buffers, one score row per thread, the logits: more threads or a bigger batch cost more.
        let one = try MemoryEstimate(config: c, weightBytes: 0, vocabularyBytes: 0, session: .init(contextLength: 2048, batchSize: 1, threads: 1))
        let more = try MemoryEstimate(config: c, weightBytes: 0, vocabularyBytes: 0, session: .init(contextLength: 2048, batchSize: 64, threads: 4))
        XCTAssertGreaterThan(one.activationBytes, c.vocabSize * 4 * 2, "logits and one logits row at least")
        XCTAssertGreaterThan(more.activationBytes, one.activationBytes + 64 * 2 * c.intermediateSize * 4 - 2 * c.intermediateSize * 4)
    }

    /// The estimate is what a session on the tiny fixture model really reserves (an f32 cache,
    /// stated on both sides: the session defaults to f32, the estimate to f16 as the CLI; the f16
    /// cache is KVCacheF16Tests').
    func testEstimateMatchesWhatASessionAllocates() throws {
        for (name, fixture) in [("tiny-gemma", "tiny-gemma"), ("gemma 3, sliding layers", "tiny-gemma3")] {
            let model = try ModelFixtures.model(fixture, .q8)
            for (ctx, batch, threads) in [(512, 64, 2), (100, 8, 1), (5, 64, 3)] {
                let session = try InferenceSession(model: model, contextLength: ctx, kernels: makeDefaultKernels(threads: threads),
                                                   batchSize: batch, cacheType: .f32)
                // Allocate the logits rows an .all prefill uses.
                try session.prefill([2, 10], logits: .all(from: 0) { _, _ in })
                let e = try MemoryEstimate(file: model.file, session: .init(contextLength: ctx, batchSize: batch, threads: threads,
                                                                            cacheType: .f32))
                XCTAssertEqual(e.kvCacheBytes, session.kvCacheBytes, "\(name) ctx \(ctx)")
                XCTAssertEqual(e.activationBytes, session.activationBufferBytes, "\(name) ctx \(ctx) batch \(batch) threads \(threads)")
                XCTAssertEqual(e.weightBytes, model.file.tensors.reduce(0) { $0 + $1.length })
            }
        }
    }

    /// Gemma 3: sliding layers hold only their window (8 positions in the fixture).
    func testSlidingLayersCountOnlyTheirWindow() throws {
        let model = try ModelFixtures.model("tiny-gemma3", .q8)
        let c = model.config
        let window = try XCTUnwrap(c.slidingWindow)
        let sliding = (0..<c.numHiddenLayers).filter { c.isSlidingLayer($0) }.count
        XCTAssertGreaterThan(sliding, 0)
        for ctx in [4, 200] {
            let e = try MemoryEstimate(file: model.file, session: .init(contextLength: ctx, cacheType: .f32))
            let positions = (c.numHiddenLayers - sliding) * ctx + sliding * min(window, ctx)
            XCTAssertEqual(e.kvCacheBytes, positions * c.numKeyValueHeads * c.headDim * 2 * 4, "ctx \(ctx)")
        }
    }

    // MARK: - MemoryFit

    // With an f32 cache throughout (the sizes the tests below were worked out for; the f16 cache
    // and its suggestion are KVCacheF16Tests').

    func fit(_ file: ModelFile, ctx: Int?, available: Int?) throws -> MemoryFit {
        try MemoryFit(file: file, session: .init(contextLength: ctx, threads: 2, cacheType: .f32),
                      available: MemoryAvailability(memAvailable: available, cgroup: nil))
    }

    func testFitsWhenThereIsRoomOrNothingIsKnown() throws {
        let file = try ModelFixtures.model("tiny-gemma", .q8).file
        let needed = try MemoryEstimate(file: file, session: .init(contextLength: 512, threads: 2, cacheType: .f32)).totalBytes
        for available in [needed, needed * 10, nil] {
            let f = try fit(file, ctx: 512, available: available)
            XCTAssertTrue(f.fits)
            XCTAssertNil(f.warning)
            XCTAssertNil(f.fittingContextLength)
        }
    }

    /// Just too little: a smaller context fits, and the warning says so with the numbers.
    func testSuggestsTheLargestContextThatFits() throws {
        let file = try ModelFixtures.model("tiny-gemma", .q8).file
        let needed = try MemoryEstimate(file: file, session: .init(contextLength: 512, threads: 2, cacheType: .f32))
        let budget = needed.totalBytes - needed.kvCacheBytes / 2
        let f = try fit(file, ctx: 512, available: budget)
        XCTAssertFalse(f.fits)
        let c = try XCTUnwrap(f.fittingContextLength)
        XCTAssertLessThan(c, 512)
        XCTAssertGreaterThanOrEqual(c, MemoryFit.smallestUsefulContext)
        XCTAssertLessThanOrEqual(try MemoryEstimate(file: file, session: .init(contextLength: c, threads: 2, cacheType: .f32)).totalBytes, budget)
        // The largest (below 512 nothing is rounded): one more position no longer fits.
        XCTAssertGreaterThan(try MemoryEstimate(file: file, session: .init(contextLength: c + 1, threads: 2, cacheType: .f32)).totalBytes, budget)
        let w = try XCTUnwrap(f.warning)
        XCTAssertTrue(w.hasPrefix("warning: "), w)
        XCTAssertFalse(w.contains("\n"), "one paragraph")
        for text in [ByteCountText.format(needed.totalBytes), ByteCountText.format(budget), "--ctx \(c)", "512-token context",
                     "read again from storage for every token", "MemAvailable"] {
            XCTAssertTrue(w.contains(text), "\(text) in: \(w)")
        }
    }

    /// Not even the weights fit: a smaller file of the same checkpoint, if one fits.
    func testSuggestsASmallerFile() throws {
        let file = try ModelFixtures.model("tiny-gemma", .q8).file
        let alternatives = MemoryFit.smallerFiles(of: file)
        XCTAssertEqual(alternatives.map(\.options), ["--type q4k", "--type q4 --pure --embedding-type q4"])
        let q8 = file.tensors.reduce(0) { $0 + $1.length }
        XCTAssertLessThan(alternatives[1].weightBytes, alternatives[0].weightBytes)
        XCTAssertLessThan(alternatives[0].weightBytes, q8)
        let pureQ4 = try XCTUnwrap(ModelFixtures.model("tiny-gemma", .q4).file.tensors.reduce(0) { $0 + $1.length })
        XCTAssertEqual(alternatives[1].weightBytes, pureQ4, "the size of a real all-q4 conversion")
        // The converter's default, its fallbacks included (the fixture's rows are not whole
        // 256-blocks), sized by the same policy.
        let defaultPath = ModelFixtures.tempDir + "/tiny-gemma-default-policy.gtm"
        _ = try Converter.convert(checkpoint: ModelFixtures.checkpoint("tiny-gemma"), output: defaultPath,
                                  options: ConversionOptions(compression: .never, overwrite: true))
        let converted = try ModelFile(path: defaultPath)
        XCTAssertEqual(alternatives[0].weightBytes, converted.tensors.reduce(0) { $0 + $1.length },
                       "the size of a real default conversion")
        XCTAssertEqual(Set(converted.tensors.map(\.type)), [.f32, .q5, .q8], "q4k and q6k fell back (rows of 64)")

        let full = try MemoryEstimate(file: file, session: .init(contextLength: 512, threads: 2, cacheType: .f32))
        let budget = full.totalBytes - (q8 - alternatives[1].weightBytes) / 2  // only the all-q4 file fits
        let f = try fit(file, ctx: 512, available: budget)
        XCTAssertEqual(f.smallerFile?.options, "--type q4 --pure --embedding-type q4")
        XCTAssertTrue(f.warning?.contains("gemma-quantize CHECKPOINT --type q4 --pure --embedding-type q4") == true, f.warning ?? "")

        let hopeless = try fit(file, ctx: 512, available: 1 << 20)
        XCTAssertNil(hopeless.fittingContextLength)
        XCTAssertNil(hopeless.smallerFile)
        XCTAssertTrue(hopeless.warning?.contains("use a smaller model") == true, hopeless.warning ?? "")
    }

    func testDecompressedIntoMemoryIsAnotherWarning() throws {
        let file = try ModelFixtures.model("tiny-gemma", .q8).file
        let f = try MemoryFit(file: file, session: .init(), available: MemoryAvailability(memAvailable: 1 << 20, cgroup: nil),
                              weightsInAnonymousMemory: true)
        XCTAssertTrue(f.warning?.contains("--unpack memory") == true, f.warning ?? "")
        XCTAssertFalse(f.warning?.contains("read again from storage") == true)
    }

    /// A zstd-compressed file counts what it unpacks to (sibling or memory), not what it stores;
    /// unpacking into memory is the other warning.
    func testCompressedFileCountsTheUnpackedSize() throws {
        let compressed = try ModelFile(path: try ModelFixtures.convertedPath("tiny-gemma", .q8, compression: .always))
        let plain = try ModelFixtures.model("tiny-gemma", .q8).file
        XCTAssertTrue(compressed.isCompressed)
        let e = try MemoryEstimate(file: compressed, session: .init())
        XCTAssertEqual(e.weightBytes, plain.tensors.reduce(0) { $0 + $1.length })
        XCTAssertNotEqual(e.weightBytes, compressed.tensors.reduce(0) { $0 + $1.storedLength })
        let root = try FakeMemoryRoot.v1(limit: 1 << 20, for: self)
        XCTAssertTrue(try MemoryFit(file: compressed, session: .init(), unpack: .memory, root: root).weightsInAnonymousMemory)
        XCTAssertFalse(try MemoryFit(file: compressed, session: .init(), unpack: .sibling, root: root).weightsInAnonymousMemory)
        XCTAssertFalse(try MemoryFit(file: plain, session: .init(), unpack: .memory, root: root).weightsInAnonymousMemory)
        XCTAssertEqual(try MemoryFit(file: plain, session: .init(), root: root).available.cgroup?.limit, 1 << 20)
    }
}
