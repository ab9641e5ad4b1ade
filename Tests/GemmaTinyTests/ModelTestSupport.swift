import Foundation
import GemmaConvert
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

    /// `fixtures/<name>` converted to `type` (the embedding too), uncompressed unless asked.
    static func convertedPath(_ name: String, _ type: StorageType, compress: Bool = false,
                              checkpointPath: String? = nil) throws -> String {
        let key = "\(name)-\(type)\(compress ? "-zstd" : "")"
        lock.lock()
        defer { lock.unlock() }
        if let path = converted[key] { return path }
        let output = tempDir + "/\(key).gtm"
        let options = ConversionOptions(type: type, embeddingType: type, compress: compress, zstdLevel: 3,
                                        threads: 0, overwrite: true)
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

    var meanKL: Double { positions > 0 ? klSum / Double(positions) : 0 }
    var agreement: Double { positions > 0 ? Double(top1Agree) / Double(positions) : 0 }

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
        if Self.argmax(ours) == Self.argmax(reference) { top1Agree += 1 }
        positions += 1
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
        String(format: "positions %d, max rel err %.3e (abs %.3e), mean KL %.3e (max %.3e), top-1 agreement %.2f%%",
               positions, maxRelativeError, maxAbsoluteError, meanKL, maxKL, agreement * 100)
    }
}
