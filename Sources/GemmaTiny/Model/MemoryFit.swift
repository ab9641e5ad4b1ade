import Foundation

/// Whether a model will fit in the memory the process can use, checked before loading, and what
/// would fit when it does not: a smaller context, or a smaller file.
///
/// A model that does not fit still runs (its weights are mapped from the file), but every token
/// reads the weights that were pushed out of the page cache again from storage: generation gets
/// many times slower. So this warns, as llama.cpp does, and never refuses.
public struct MemoryFit: Sendable, Equatable {
    public var estimate: MemoryEstimate
    public var available: MemoryAvailability
    /// The model's file name, for the message.
    public var fileName: String
    /// The largest context (up to the one asked for) that fits; nil when none of at least
    /// `smallestUsefulContext` tokens does, or when the model fits as asked.
    public var fittingContextLength: Int?
    /// A smaller conversion of the same checkpoint that fits at the context asked for.
    public var smallerFile: SmallerFile?
    /// An f32 KV cache was asked for and an f16 one (`--cache-type f16`) fits at that context.
    public var f16CacheFits = false
    /// Most of the weights go to anonymous memory (a mostly compressed file with `--unpack
    /// memory`): then not fitting means swapping or the OOM killer, not re-reading.
    public var weightsInAnonymousMemory: Bool

    /// A `gemma-quantize` setting that makes a smaller file.
    public struct SmallerFile: Sendable, Equatable {
        /// The options, e.g. "--type q4 --pure --embedding-type q4".
        public var options: String
        public var weightBytes: Int
    }

    /// A check for `ModelLoader.open` / `GemmaModel.load` to run on the file's header before
    /// anything is unpacked or mapped; its warning goes to their `notice`.
    public struct Check: Sendable, Equatable {
        public var session: MemoryEstimate.Session
        /// Where /proc and /sys are read from ("/" except in tests).
        public var root: String

        public init(session: MemoryEstimate.Session, root: String = "/") {
            self.session = session
            self.root = root
        }
    }

    /// Contexts shorter than this are not suggested.
    public static let smallestUsefulContext = 64

    public var fits: Bool { available.bytes.map { estimate.totalBytes <= $0 } ?? true }

    /// Checks `file` (header and tensor table only) against the memory available now.
    /// - Parameters:
    ///   - unpack: how a compressed file will be unpacked.
    ///   - root: where /proc and /sys are read from ("/" except in tests).
    public init(file: ModelFile, session: MemoryEstimate.Session, unpack: ModelLoader.UnpackMode = .sibling,
                root: String = "/") throws(ModelError) {
        try self.init(file: file, session: session, available: MemoryAvailability.read(root: root),
                      weightsInAnonymousMemory: ModelLoader.decompressesIntoMemory(file, mode: unpack)
                          && 2 * file.compressedTensorBytes > file.tensorBytes)
    }

    public init(file: ModelFile, session: MemoryEstimate.Session, available: MemoryAvailability,
                weightsInAnonymousMemory: Bool = false) throws(ModelError) {
        let config = file.metadata.config
        let vocabularyBytes = file.header.tokenizer.count
        estimate = try MemoryEstimate(file: file, session: session)
        self.available = available
        fileName = (file.path as NSString).lastPathComponent
        self.weightsInAnonymousMemory = weightsInAnonymousMemory
        fittingContextLength = nil
        smallerFile = nil
        guard let budget = available.bytes, estimate.totalBytes > budget else { return }

        func total(weights: Int, context: Int) throws(ModelError) -> Int {
            var s = session
            s.contextLength = context
            return try MemoryEstimate(config: config, weightBytes: weights, vocabularyBytes: vocabularyBytes, session: s).totalBytes
        }
        // The estimate grows with the context: binary search for the largest that fits.
        var lo = 0, hi = estimate.contextLength - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if try total(weights: estimate.weightBytes, context: mid) <= budget { lo = mid } else { hi = mid - 1 }
        }
        // A round number is easier to type and remember.
        let rounded = lo >= 512 ? lo / 256 * 256 : lo
        if rounded >= Self.smallestUsefulContext { fittingContextLength = rounded }

        if session.cacheType == .f32 {
            var s = session
            s.cacheType = .f16
            s.contextLength = estimate.contextLength
            let half = try MemoryEstimate(config: config, weightBytes: estimate.weightBytes, vocabularyBytes: vocabularyBytes,
                                          session: s)
            f16CacheFits = half.totalBytes <= budget
        }
        for candidate in Self.smallerFiles(of: file) where candidate.weightBytes < estimate.weightBytes {
            if try total(weights: candidate.weightBytes, context: estimate.contextLength) <= budget {
                smallerFile = candidate
                break
            }
        }
    }

    /// The conversions worth suggesting, largest (best quality) first: the default (`--type q4k`,
    /// llama.cpp's Q4_K_M mix), then every matrix and the embedding at q4. Sizes from the tensor
    /// shapes and `QuantizationPolicy`, the converter's own per-tensor choice.
    static func smallerFiles(of file: ModelFile) -> [SmallerFile] {
        let layers = file.metadata.config.numHiddenLayers
        func size(_ policy: QuantizationPolicy) -> Int {
            file.tensors.reduce(0) { sum, t in
                guard t.shape.count == 2 else { return sum + t.length }
                let type = QuantizationPolicy.fitted(policy.wantedType(matrix: t.name, layers: layers), rowLength: t.rowLength)
                return sum + t.rowCount * (type.rowBytes(t.rowLength) ?? t.rowLength * 4)
            }
        }
        return [SmallerFile(options: "--type q4k", weightBytes: size(QuantizationPolicy(type: .q4k))),
                SmallerFile(options: "--type q4 --pure --embedding-type q4",
                            weightBytes: size(QuantizationPolicy(type: .q4, pure: true, embeddingType: .q4)))]
    }

    /// One paragraph for stderr, starting "warning: "; nil when the model fits.
    public var warning: String? {
        guard !fits, let budget = available.bytes else { return nil }
        let e = estimate
        let f = ByteCountText.format
        var text = "warning: \(fileName) needs about \(f(e.totalBytes)) of memory (\(f(e.weightBytes)) of weights, "
        let kv = e.cacheType == .f32 ? "KV cache" : "\(e.cacheType) KV cache"
        text += "\(f(e.kvCacheBytes)) \(kv) for a \(e.contextLength)-token context, \(f(e.activationBytes)) of activations, "
        text += "\(f(e.runtimeBytes)) for the runtime) but only about \(f(budget)) is available (\(available.explanation)). "
        if weightsInAnonymousMemory {
            text += "It will run, but the weights are decompressed into memory (--unpack memory): expect heavy swapping or the out-of-memory killer. "
        } else {
            text += "It will run, but generation will be very slow: the weights that do not stay in memory are read again from storage for every token. "
        }
        var fixes: [String] = []
        if let c = fittingContextLength { fixes.append("--ctx \(c)") }
        if f16CacheFits { fixes.append("--cache-type f16 (half the KV cache)") }
        if let s = smallerFile {
            fixes.append("a smaller file (gemma-quantize CHECKPOINT \(s.options): about \(f(s.weightBytes)) of weights)")
        }
        if fixes.isEmpty {
            text += "Nothing smaller this file offers would fit: use a smaller model, free memory or raise the limit."
        } else {
            text += "Would fit: \(fixes.joined(separator: ", or "))."
        }
        return text
    }
}
