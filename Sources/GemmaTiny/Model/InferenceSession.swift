import Foundation
import GemmaKernels

/// Which predictions `InferenceSession.prefill` computes.
public enum PrefillLogits {
    /// None: the tokens only fill the KV cache.
    case none
    /// The prediction after the last token, left in `InferenceSession.logits`.
    case last
    /// The prediction after every token from index `from` (counted in the tokens passed) on:
    /// `body(i, logits)` is called in order, for i in from..<tokens.count, with the `vocab`
    /// logits that follow token i (the buffer is reused after `body` returns). The last
    /// token's logits are also left in `InferenceSession.logits`. This is what perplexity needs.
    case all(from: Int = 0, (_ index: Int, _ logits: UnsafeBufferPointer<Float>) -> Void)
}

/// The per-conversation half of a model: KV cache, activation buffers and the current position.
///
/// Tokens go through the layers in batches of up to `batchSize`: every matrix product of a layer
/// runs once for the whole batch (`MatmulKernels.matmul`), so prompt processing reads each weight
/// once per batch instead of once per token. Decoding is the same path with a batch of one.
/// Everything is allocated once, when the session is created; `prefill` and `forward` allocate
/// nothing (the first `.all` prefill allocates its logits rows once).
///
/// A session is used from one thread at a time (it is not Sendable); the `GemmaModel` it reads
/// is shared.
public final class InferenceSession {
    public let model: GemmaModel
    public let config: ModelConfig
    public let kernels: any MatmulKernels
    /// Positions the KV cache holds.
    public let contextLength: Int
    /// Most tokens one pass through the layers processes (at most `contextLength`).
    public let batchSize: Int
    /// Tokens in the KV cache: the position of the next token fed.
    public private(set) var position = 0
    /// True when the logits buffer holds the prediction after the last token fed.
    public private(set) var hasLogits = false

    /// The default `batchSize`.
    public static let defaultBatchSize = 64

    private let hidden: Int
    private let heads: Int
    private let kvHeads: Int
    private let headDim: Int
    private let qDim: Int
    private let kvDim: Int
    private let intermediate: Int
    private let vocab: Int
    private let eps: Float
    private let attentionScale: Float

    // Activations (f32). Batch buffers hold one row per token of the batch, rows contiguous:
    // row i of `x` is x + i * hidden, and so on.
    private let x: UnsafeMutablePointer<Float>       // residual stream [batch][hidden]
    private let xn: UnsafeMutablePointer<Float>      // normed input of a block [batch][hidden]
    private let proj: UnsafeMutablePointer<Float>    // o_proj / down_proj output [batch][hidden]
    private let q: UnsafeMutablePointer<Float>       // queries [batch][heads * headDim]
    private let attn: UnsafeMutablePointer<Float>    // attention output [batch][heads * headDim]
    private let gate: UnsafeMutablePointer<Float>    // [batch][intermediate]
    private let up: UnsafeMutablePointer<Float>      // [batch][intermediate]
    private let ropeCos: UnsafeMutablePointer<Float> // [batch][headDim / 2]: each token's rotation
    private let ropeSin: UnsafeMutablePointer<Float>
    private let scores: UnsafeMutablePointer<Float>  // [contextLength]
    private let invFreq: UnsafeMutablePointer<Float> // [headDim / 2]
    private let logitsBuffer: UnsafeMutablePointer<Float> // [vocab]
    private let activations: UnsafeMutableRawPointer
    private let activationBytes: Int

    /// Rows of logits an `.all` prefill computes per LM-head product, and their buffer
    /// ([logitRowCapacity][vocab]), allocated by the first `.all` prefill.
    private let logitRowCapacity: Int
    private var logitRows: UnsafeMutablePointer<Float>?

    /// KV cache: per layer, [contextLength][kvDim] keys then the same for values. Reserved with
    /// MAP_NORESERVE, so only the positions actually used take memory.
    private let cache: UnsafeMutablePointer<Float>
    private let cacheBytes: Int
    private let layerStride: Int

    /// - Parameters:
    ///   - contextLength: positions to hold; nil = the model's `max_position_embeddings`.
    ///   - kernels: the matrix products to use (default: single-threaded scalar).
    ///   - batchSize: most tokens per pass through the layers (prompt processing); at least 1.
    ///     The batch buffers take about batchSize * (3 hidden + 2 q + 2 intermediate) floats.
    public init(model: GemmaModel, contextLength: Int? = nil, kernels: (any MatmulKernels)? = nil,
                batchSize: Int = InferenceSession.defaultBatchSize) throws(ModelError) {
        precondition(batchSize >= 1, "batch size must be at least 1, got \(batchSize)")
        let config = model.config
        let maximum = config.maxPositionEmbeddings
        let ctx = contextLength ?? maximum
        guard ctx >= 1, ctx <= maximum else { throw .invalidContextLength(requested: ctx, maximum: maximum) }
        self.model = model
        self.config = config
        self.kernels = kernels ?? ScalarKernels()
        self.contextLength = ctx
        let batch = min(batchSize, ctx)
        self.batchSize = batch
        hidden = config.hiddenSize
        heads = config.numAttentionHeads
        kvHeads = config.numKeyValueHeads
        headDim = config.headDim
        qDim = heads * headDim
        kvDim = kvHeads * headDim
        intermediate = config.intermediateSize
        vocab = config.vocabSize
        eps = Float(config.rmsNormEps)
        attentionScale = Float(1.0 / Double(headDim).squareRoot())
        logitRowCapacity = min(batch, 8)

        // One block for all activations, each buffer 64-byte aligned.
        let half = headDim / 2
        let sizes = [batch * hidden, batch * hidden, batch * hidden, batch * qDim, batch * qDim,
                     batch * intermediate, batch * intermediate, batch * half, batch * half,
                     ctx, half, vocab]
        let padded = sizes.map { ($0 + 15) & ~15 }
        activationBytes = padded.reduce(0, +) * MemoryLayout<Float>.size
        activations = UnsafeMutableRawPointer.allocate(byteCount: activationBytes, alignment: 64)
        activations.initializeMemory(as: UInt8.self, repeating: 0, count: activationBytes)
        var buffers: [UnsafeMutablePointer<Float>] = []
        var offset = 0
        for n in padded {
            buffers.append((activations + offset * MemoryLayout<Float>.size).assumingMemoryBound(to: Float.self))
            offset += n
        }
        (x, xn, proj, q, attn, gate, up, ropeCos, ropeSin, scores, invFreq, logitsBuffer) =
            (buffers[0], buffers[1], buffers[2], buffers[3], buffers[4], buffers[5], buffers[6], buffers[7],
             buffers[8], buffers[9], buffers[10], buffers[11])

        layerStride = 2 * ctx * kvDim
        let (count, overflow) = layerStride.multipliedReportingOverflow(by: config.numHiddenLayers * MemoryLayout<Float>.size)
        guard !overflow else { activations.deallocate(); throw .outOfMemory("KV cache size overflows") }
        cacheBytes = max(count, 1)
        let p = mmap(nil, cacheBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p, p != MAP_FAILED else {
            activations.deallocate()
            throw .outOfMemory("cannot reserve \(cacheBytes) bytes for a \(ctx)-token KV cache; try a smaller context")
        }
        cache = p.assumingMemoryBound(to: Float.self)

        // inv_freq = 1 / theta^(2i/d), as transformers computes it in f32.
        let theta = Float(config.ropeTheta)
        for i in 0..<half {
            let exponent = Float(2 * i) / Float(headDim)
            let power = Float(Foundation.pow(Double(theta), Double(exponent)))
            invFreq[i] = 1 / power
        }
    }

    deinit {
        munmap(cache, cacheBytes)
        activations.deallocate()
        logitRows?.deallocate()
    }

    /// Bytes of the KV cache when every position is used.
    public var kvCacheBytes: Int { cacheBytes }

    /// Bytes of the activation buffers (batch buffers, scores, logits).
    public var activationBufferBytes: Int { activationBytes + (logitRows == nil ? 0 : logitRowCapacity * vocab * 4) }

    /// The logits after the last token fed with `computeLogits: true` (vocab floats). The buffer
    /// is overwritten by the next `forward`; callers may modify it (samplers do).
    public var logits: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: logitsBuffer, count: vocab)
    }

    /// Empties the KV cache.
    public func reset() {
        position = 0
        hasLogits = false
    }

    /// Forgets every position from `newPosition` on (the cache keeps the earlier ones).
    public func rewind(to newPosition: Int) {
        precondition(newPosition >= 0 && newPosition <= position, "cannot rewind to \(newPosition) from \(position)")
        position = newPosition
        hasLogits = false
    }

    public var remainingContext: Int { contextLength - position }

    /// Feeds `tokens` in order; logits (if asked) are those after the last one.
    public func prefill(_ tokens: some Collection<Int>, computeLogits: Bool = true) throws(InferenceError) {
        try prefill(tokens, logits: computeLogits ? .last : .none)
    }

    /// Runs one token through the model at the current position, appends its keys and values to
    /// the cache and advances the position. With `computeLogits`, fills `logits` with the scores
    /// of the next token (the LM head is skipped otherwise: prompt tokens don't need it).
    public func forward(token: Int, computeLogits: Bool = true) throws(InferenceError) {
        try prefill(CollectionOfOne(token), logits: computeLogits ? .last : .none)
    }

    /// Feeds `tokens` in order, `batchSize` at a time, and computes the logits `logits` asks for.
    /// Every token is checked before any is fed: on an error the session is unchanged. An empty
    /// collection changes nothing.
    public func prefill(_ tokens: some Collection<Int>, logits request: PrefillLogits) throws(InferenceError) {
        for t in tokens where t < 0 || t >= vocab { throw .tokenOutOfRange(token: t, vocabularySize: vocab) }
        let count = tokens.count
        guard count <= remainingContext else { throw .contextFull(contextLength: contextLength) }
        guard count > 0 else { return }
        hasLogits = false

        var next = tokens.startIndex
        var done = 0
        while done < count {
            let n = min(batchSize, count - done)
            for i in 0..<n {
                embed(tokens[next], row: i)
                next = tokens.index(after: next)
            }
            forwardBatch(count: n)
            let isLast = done + n == count
            switch request {
            case .none:
                break
            case .last:
                if isLast {
                    lmHead(rows: (n - 1)..<n, into: logitsBuffer)
                    hasLogits = true
                }
            case .all(let from, let body):
                allLogits(batchStart: done, count: n, from: from, isLast: isLast, body)
            }
            done += n
        }
    }

    // MARK: - The forward pass

    /// Row `row` of the batch = the token's embedding, scaled by the normaliser the converter
    /// stored (rounded as the reference rounds it).
    private func embed(_ token: Int, row: Int) {
        let xi = x + row * hidden
        model.embedding.dequantizeRow(token, into: xi)
        let scale = config.embeddingScale
        for j in 0..<hidden { xi[j] *= scale }
    }

    /// Runs the `n` embedded rows of the batch, at positions position..<position+n, through every
    /// layer: their keys and values join the cache, and `x` holds their final hidden states.
    private func forwardBatch(count n: Int) {
        for i in 0..<n { setRotation(row: i, position: position + i) }
        switch model.architecture {
        case .gemma:
            for layer in model.layers { runGemmaLayer(layer, count: n) }
        }
        position += n
    }

    private func runGemmaLayer(_ w: LayerWeights, count n: Int) {
        // This layer's cache: keys [contextLength][kvDim], then values. The batch's keys and
        // values are written straight into their rows.
        let keys = cache + w.index * layerStride
        let values = keys + contextLength * kvDim
        let newKeys = keys + position * kvDim
        let newValues = values + position * kvDim

        // Attention block.
        for i in 0..<n { rmsNorm(x + i * hidden, w.inputNorm, into: xn + i * hidden) }
        matmul(w.qProj, xn, q, count: n)
        matmul(w.kProj, xn, newKeys, count: n)
        matmul(w.vProj, xn, newValues, count: n)
        for i in 0..<n {
            for h in 0..<heads { rotate(q + i * qDim + h * headDim, row: i) }
            for h in 0..<kvHeads { rotate(newKeys + i * kvDim + h * headDim, row: i) }
        }
        // Causal: token i of the batch, at position + i, sees positions 0...position + i.
        for i in 0..<n {
            attend(q + i * qDim, length: position + i + 1, keys: keys, values: values, into: attn + i * qDim)
        }
        matmul(w.oProj, attn, proj, count: n)
        add(proj, into: x, count: n * hidden)

        // MLP block: down(gelu_tanh(gate(x)) * up(x)).
        for i in 0..<n { rmsNorm(x + i * hidden, w.postAttentionNorm, into: xn + i * hidden) }
        matmul(w.gateProj, xn, gate, count: n)
        matmul(w.upProj, xn, up, count: n)
        gt_gelu_tanh_mul(gate, up, n * intermediate)
        matmul(w.downProj, gate, proj, count: n)
        add(proj, into: x, count: n * hidden)
    }

    /// Final norm and LM head (the tied embedding) for batch rows `rows`: the logits of row
    /// rows.lowerBound + k go to out + k * vocab.
    private func lmHead(rows: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        for (k, r) in rows.enumerated() { rmsNorm(x + r * hidden, model.finalNorm, into: xn + k * hidden) }
        matmul(model.embedding, xn, out, count: rows.count)
    }

    /// The `.all` request for one batch (tokens batchStart..<batchStart+n of the prefill).
    private func allLogits(batchStart: Int, count n: Int, from: Int, isLast: Bool,
                           _ body: (Int, UnsafeBufferPointer<Float>) -> Void) {
        let rowsOut: UnsafeMutablePointer<Float>
        if let r = logitRows {
            rowsOut = r
        } else {
            rowsOut = .allocate(capacity: logitRowCapacity * vocab)
            logitRows = rowsOut
        }
        var r = max(from - batchStart, 0)
        let scored = r < n
        while r < n {
            let k = min(logitRowCapacity, n - r)
            lmHead(rows: r..<(r + k), into: rowsOut)
            for j in 0..<k { body(batchStart + r + j, UnsafeBufferPointer(start: rowsOut + j * vocab, count: vocab)) }
            r += k
            if r == n && isLast { logitsBuffer.update(from: rowsOut + (k - 1) * vocab, count: vocab) }
        }
        if isLast {
            if !scored { lmHead(rows: (n - 1)..<n, into: logitsBuffer) }
            hasLogits = true
        }
    }

    /// Y = X W^T for `count` rows (rows of X and Y contiguous); a single row is a matvec.
    private func matmul(_ w: WeightMatrix, _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>,
                        count: Int) {
        if count == 1 {
            kernels.matvec(w, input, output)
        } else {
            kernels.matmul(w, input, xStride: w.cols, output, yStride: w.rows, count: count)
        }
    }

    /// x += y.
    private func add(_ y: UnsafePointer<Float>, into x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { x[i] += y[i] }
    }

    /// x / sqrt(mean(x^2) + eps) * (1 + w), in f32 (the sum of squares in f64).
    private func rmsNorm(_ input: UnsafePointer<Float>, _ w: NormWeights, into out: UnsafeMutablePointer<Float>) {
        var sum: Double = 0
        for i in 0..<hidden { let v = Double(input[i]); sum += v * v }
        let meanSquare = Float(sum / Double(hidden))
        let inv = Float(1 / (Double(meanSquare + eps)).squareRoot())
        w.scale.withUnsafeBufferPointer { s in
            for i in 0..<hidden { out[i] = (input[i] * inv) * s[i] }
        }
    }

    /// cos/sin of position * inv_freq for batch row `row` (the product in f32, as transformers
    /// forms it).
    private func setRotation(row: Int, position: Int) {
        let half = headDim / 2
        let p = Float(position)
        for i in 0..<half {
            let angle = Double(p * invFreq[i])
            ropeCos[row * half + i] = Float(Foundation.cos(angle))
            ropeSin[row * half + i] = Float(Foundation.sin(angle))
        }
    }

    /// Rotate-half RoPE on one head of batch row `row`: pairs (i, i + d/2).
    private func rotate(_ v: UnsafeMutablePointer<Float>, row: Int) {
        let half = headDim / 2
        let cos = ropeCos + row * half, sin = ropeSin + row * half
        for i in 0..<half {
            let a = v[i], b = v[i + half]
            v[i] = a * cos[i] - b * sin[i]
            v[i + half] = b * cos[i] + a * sin[i]
        }
    }

    /// Grouped-query attention of one token's queries over cache positions 0..<length: each
    /// query head uses the key/value head of its group.
    private func attend(_ query: UnsafePointer<Float>, length: Int, keys: UnsafePointer<Float>,
                        values: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        let group = heads / kvHeads
        for h in 0..<heads {
            let kv = (h / group) * headDim
            gt_attention_head(query + h * headDim, keys + kv, values + kv, kvDim, length, headDim,
                              attentionScale, scores, out + h * headDim)
        }
    }
}
