import Foundation
import GemmaConvert
import GemmaKernels
@testable import GemmaTiny
import XCTest

/// Shared helpers for the model, parity, generation and CLI tests: fixture paths, golden files,
/// and fixture checkpoints converted once per test process.
enum ModelFixtures {
    static let repoRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var fixtures: URL { repoRoot.appendingPathComponent("fixtures") }
    static func checkpoint(_ name: String) -> String { fixtures.appendingPathComponent(name).path }

    /// A temp folder for this test process, removed at exit.
    static let tempDir: String = {
        let dir = NSTemporaryDirectory() + "gemma-tiny-model-tests-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "gemma-tiny-model-tests-\(getpid())") }
        return dir
    }()

    private static let lock = NSLock()
    nonisolated(unsafe) private static var converted: [String: String] = [:]
    nonisolated(unsafe) private static var models: [String: GemmaModel] = [:]

    /// `fixtures/<name>` converted to `type` (the embedding too), uncompressed unless asked;
    /// every matrix in `type` unless `policy` (then a q4 file keeps the sensitive ones at q8).
    static func convertedPath(_ name: String, _ type: StorageType, compression: CompressionChoice = .never,
                              checkpointPath: String? = nil, policy: Bool = false) throws -> String {
        let key = "\(name)-\(type)\(compression == .never ? "" : "-zstd-\(compression)")\(policy ? "-policy" : "")"
        lock.lock()
        defer { lock.unlock() }
        if let path = converted[key] { return path }
        let output = tempDir + "/\(key).gtm"
        let options = ConversionOptions(type: type, embeddingType: type, compression: compression, zstdLevel: 3,
                                        threads: 0, overwrite: true, pure: !policy)
        _ = try Converter.convert(checkpoint: checkpointPath ?? checkpoint(name), output: output, options: options)
        converted[key] = output
        return output
    }

    /// The loaded model for `fixtures/<name>` in `type`, shared by all tests.
    static func model(_ name: String, _ type: StorageType) throws -> GemmaModel {
        let path = try convertedPath(name, type)
        lock.lock()
        defer { lock.unlock() }
        if let m = models[path] { return m }
        let m = try GemmaModel.load(path: path)
        models[path] = m
        return m
    }

    static func tokenizer(for model: GemmaModel) throws -> Tokenizer {
        try Tokenizer(vocabulary: model.file.vocabulary, settings: model.file.metadata.tokenizer)
    }
}

/// `fixtures/goldens/<model>.json` and its logits file (see fixtures/README.md).
struct Golden: Decodable {
    struct Prompt: Decodable {
        var name: String
        var text: String
        var chat: Bool
        var ids: [Int]
        var promptLen: Int
        var greedyIds: [Int]
        var logitsRowOffset: Int
        var logitsRows: Int
        var minMargin: Double?
    }

    var model: String
    var vocabSize: Int
    var bosId: Int
    var numNewTokens: Int
    var logitsNewSteps: Int
    var logitsFile: String
    var prompts: [Prompt]

    /// All logits rows, row-major.
    var logits: [Float] = []

    enum CodingKeys: String, CodingKey {
        case model, vocabSize, bosId, numNewTokens, logitsNewSteps, logitsFile, prompts
    }

    static func load(_ name: String) throws -> Golden {
        let dir = ModelFixtures.fixtures.appendingPathComponent("goldens")
        let data = try Data(contentsOf: dir.appendingPathComponent("\(name).json"))
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        var g = try decoder.decode(Golden.self, from: data)
        let raw = try Data(contentsOf: dir.appendingPathComponent(g.logitsFile))
        g.logits = raw.withUnsafeBytes { buf in
            (0..<(raw.count / 4)).map { Float(bitPattern: UInt32(littleEndian: buf.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
        return g
    }

    /// Reference logits row `row` of `prompt` (row t = after (ids + greedy)[0...t]).
    func referenceRow(_ prompt: Prompt, _ row: Int) -> ArraySlice<Float> {
        let start = (prompt.logitsRowOffset + row) * vocabSize
        return logits[start..<(start + vocabSize)]
    }
}

/// Comparison of our logits with the reference's, accumulated over positions.
struct LogitComparison {
    /// max over positions of max_i |ours_i - ref_i| / max_i |ref_i|.
    var maxRelativeError: Double = 0
    var maxAbsoluteError: Double = 0
    var klSum: Double = 0
    var maxKL: Double = 0
    var positions = 0
    var top1Agree = 0
    /// Positions where the reference's top-1 beats its top-2 by at least `decisiveMargin`.
    var decisivePositions = 0
    var decisiveAgree = 0
    static let decisiveMargin: Float = 0.2

    var meanKL: Double { positions > 0 ? klSum / Double(positions) : 0 }
    var agreement: Double { positions > 0 ? Double(top1Agree) / Double(positions) : 0 }
    var decisiveAgreement: Double { decisivePositions > 0 ? Double(decisiveAgree) / Double(decisivePositions) : 1 }

    mutating func add(ours: UnsafeBufferPointer<Float>, reference: ArraySlice<Float>) {
        precondition(ours.count == reference.count)
        var maxRef: Double = 0, maxDiff: Double = 0
        for (o, r) in zip(ours, reference) {
            maxRef = max(maxRef, abs(Double(r)))
            maxDiff = max(maxDiff, abs(Double(o) - Double(r)))
        }
        maxAbsoluteError = max(maxAbsoluteError, maxDiff)
        maxRelativeError = max(maxRelativeError, maxRef > 0 ? maxDiff / maxRef : maxDiff)
        let kl = Self.kl(reference: reference, ours: ours)
        klSum += kl
        maxKL = max(maxKL, kl)
        let agrees = Self.argmax(ours) == Self.argmax(reference)
        if agrees { top1Agree += 1 }
        positions += 1
        let sorted = reference.sorted(by: >)
        if sorted.count > 1, sorted[0] - sorted[1] >= Self.decisiveMargin {
            decisivePositions += 1
            if agrees { decisiveAgree += 1 }
        }
    }

    static func argmax<C: Collection>(_ x: C) -> Int where C.Element == Float {
        var best = 0, bestValue = -Float.infinity
        for (i, v) in x.enumerated() where v > bestValue { best = i; bestValue = v }
        return best
    }

    static func logSoftmax<C: Collection>(_ x: C) -> [Double] where C.Element == Float {
        let m = Double(x.max() ?? 0)
        let lse = m + log(x.reduce(0.0) { $0 + exp(Double($1) - m) })
        return x.map { Double($0) - lse }
    }

    /// KL(ref || ours) in nats.
    static func kl(reference: ArraySlice<Float>, ours: UnsafeBufferPointer<Float>) -> Double {
        let lp = logSoftmax(reference), lq = logSoftmax(ours)
        var s = 0.0
        for i in lp.indices { s += exp(lp[i]) * (lp[i] - lq[i]) }
        return max(0, s)
    }

    var summary: String {
        String(format: "positions %d, max rel err %.3e (abs %.3e), mean KL %.3e (max %.3e), top-1 agreement %.2f%% (%d/%d; margin >= %.1f: %d/%d)",
               positions, maxRelativeError, maxAbsoluteError, meanKL, maxKL, agreement * 100, top1Agree, positions,
               Self.decisiveMargin, decisiveAgree, decisivePositions)
    }
}

/// Writes modified copies of model files for tests.
enum ModelFileRewriter {
    /// Copies `source` to `destination` with `old` replaced by `new` (of the same length) in the
    /// metadata JSON, the checksums resealed: for values the metadata's types cannot hold.
    static func replaceInMetadata(_ source: String, to destination: String, _ old: String, with new: String) throws {
        precondition(old.utf8.count == new.utf8.count, "the sections keep their offsets")
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: source)))
        var header = try ModelFile(path: source).header
        let json = String(decoding: bytes[header.metadata], as: UTF8.self)
        guard json.contains(old) else { throw ModelFileError.invalidMetadata("no \(old) in \(json)") }
        bytes.replaceSubrange(header.metadata, with: Array(json.replacingOccurrences(of: old, with: new).utf8))
        var hash = gt_xxh64_state()
        gt_xxh64_reset(&hash, 0)
        for r in [header.metadata, header.tokenizer, header.tensorTable] {
            bytes[r].withUnsafeBytes { gt_xxh64_update(&hash, $0.baseAddress, $0.count) }
        }
        header.sectionsChecksum = gt_xxh64_digest(&hash)
        bytes.replaceSubrange(0..<FileHeader.size, with: header.encoded())
        try Data(bytes).write(to: URL(fileURLWithPath: destination))
    }

    /// Copies `source` to `destination`, letting `edit` change the metadata, the vocabulary and
    /// each tensor (return nil to drop it). Tensor bytes are passed uncompressed as f32 when
    /// `dequantize` is set (the copy then stores every tensor as f32).
    static func rewrite(_ source: String, to destination: String, dequantize: Bool = false,
                        metadata editMetadata: (inout ModelMetadata) -> Void = { _ in },
                        vocabulary editVocabulary: (inout TokenizerVocabulary) -> Void = { _ in },
                        tensor editTensor: (TensorInfo) -> (name: String, shape: [Int])? = { ($0.name, $0.shape) }) throws {
        let file = try ModelLoader.open(path: source, unpack: .memory)
        var metadata = file.metadata
        metadata.unpackedFrom = nil
        if dequantize {
            metadata.quantization.type = .f32
            metadata.quantization.embeddingType = .f32
        }
        editMetadata(&metadata)
        var vocabulary = file.vocabulary
        editVocabulary(&vocabulary)
        let writer = try ModelFileWriter(destination: destination, metadata: metadata, vocabulary: vocabulary, overwrite: true)
        for t in file.tensors {
            guard let (name, shape) = editTensor(t) else { continue }
            let bytes = try file.data(t)
            if dequantize {
                var values = [Float](repeating: 0, count: t.elementCount)
                values.withUnsafeMutableBufferPointer { out in
                    for r in 0..<t.rowCount {
                        gt_dequantize_row(Int32(t.type.rawValue), bytes.baseAddress! + r * t.rowBytes, t.rowLength,
                                          out.baseAddress! + r * t.rowLength)
                    }
                }
                try values.withUnsafeBytes { try writer.addTensor(name: name, type: .f32, shape: shape, bytes: $0) }
            } else if shape == t.shape {
                try writer.addTensor(name: name, type: t.type, shape: shape, bytes: bytes)
            } else {
                // A different shape: write that many bytes of zeros of the same type.
                let length = TensorInfo.expectedLength(type: t.type, shape: shape)!
                let zeros = [UInt8](repeating: 0, count: length)
                try zeros.withUnsafeBytes { try writer.addTensor(name: name, type: t.type, shape: shape, bytes: $0) }
            }
        }
        _ = try writer.finish()
    }
}

/// Prefill checks shared by PrefillTests and Gemma23ParityTests.
extension XCTestCase {
    /// Every position's logits, one token per `forward`, in a session of batch size 1.
    func tokenByToken(_ model: GemmaModel, _ ids: [Int], kernels: any MatmulKernels) throws -> [[Float]] {
        let session = try InferenceSession(model: model, contextLength: ids.count, kernels: kernels, batchSize: 1)
        var rows: [[Float]] = []
        for t in ids {
            try session.forward(token: t)
            rows.append(Array(session.logits))
        }
        return rows
    }

    /// Feeds `tokens` as one `.all` prefill and checks every row from `from` on against
    /// `reference[offset...]` (within `PrefillTests.tolerance`), and the logits left after it.
    func checkAll(_ session: InferenceSession, _ tokens: ArraySlice<Int>, from: Int = 0, reference: [[Float]],
                  offset: Int, _ what: String) throws {
        var seen: [Int] = []
        var worst = 0.0
        try session.prefill(tokens, logits: .all(from: from) { i, logits in
            seen.append(i)
            worst = max(worst, PrefillTests.relativeError(logits, reference[offset + i]))
        })
        XCTAssertEqual(seen, Array(from..<tokens.count), "\(what): rows handed out")
        XCTAssertLessThanOrEqual(worst, PrefillTests.tolerance, what)
        XCTAssertTrue(session.hasLogits, what)
        let last = PrefillTests.relativeError(UnsafeBufferPointer(session.logits), reference[offset + tokens.count - 1])
        XCTAssertLessThanOrEqual(last, PrefillTests.tolerance, "\(what): logits after the last token")
    }
}
