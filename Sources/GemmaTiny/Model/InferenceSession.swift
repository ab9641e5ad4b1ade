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
/// Gemma 2 and 3 (`GemmaVariant`): norms after attention and the MLP, query/key norms, soft-capped
/// attention and final logits, per-layer RoPE bases, and sliding-window layers whose KV cache is
/// a ring buffer of `window` positions (`KVCache`). A batch's keys and values are computed into
/// batch buffers; each query attends to the cached positions of its window followed by the
/// batch's positions up to its own, and only then are the batch's keys and values stored, so a
/// batch longer than a window never overwrites what an earlier token of the batch still needs.
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
    /// How the KV cache stores keys and values.
    public let cacheType: KVCacheType
    /// Tokens in the KV cache: the position of the next token fed.
    public private(set) var position = 0
    /// The tokens in the KV cache, in the order they were fed (`tokens.count == position`): the
    /// conversation's one token history, which generation reuses as a prefix and samplers read
    /// for their repetition penalty.
    public private(set) var tokens: [Int] = []
    /// True when the logits buffer holds the prediction after the last token fed, unused: a
    /// rewind or a prefill without logits clears it, and so does ``invalidateLogits()`` (called
    /// by generation once a sampler has modified the buffer).
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
    private let variant: GemmaVariant

    // Activations (f32): the buffers of `ActivationBuffers` (which allocates them and says what
    // each holds), kept here by the same names for the forward pass.
    private let buffers: ActivationBuffers
    private let x, xn, proj, q, attn, gate, up, ropeCos, ropeSin, invFreq, kBatch, vBatch: UnsafeMutablePointer<Float>
    private let logitsBuffer: UnsafeMutablePointer<Float> // [vocab]
    // Per attention part: its block's rows, runs of positions, and the kernel's scratch space.
    private let attentionRows: UnsafeMutablePointer<gt_attention_row> // [parts][GT_ATTENTION_BLOCK_ROWS]
    private let attentionRuns: UnsafeMutablePointer<gt_kv_run> // [parts][3]
    // An f16 cache: the runs, and the batch's keys and values rounded to halves before they are
    // attended, so they are the values stored (nil with an f32 cache).
    private let attentionRunsF16: UnsafeMutablePointer<gt_kv_run_f16> // [parts][3]
    private let kBatchF16, vBatchF16: UnsafeMutablePointer<UInt16>? // [batch][kvDim]
    private let attentionScratch: UnsafeMutableRawPointer // [parts][attentionScratchBytes]
    private let attentionScratchBytes: Int
    /// Parts a batch's attention is split into (the kernels' threads).
    private let attentionParts: Int
    /// Decoding with fewer KV heads than threads: the segments' softmax states of each KV head's
    /// query rows ([kvHeads][segments][group][GT_ATTENTION_PARTIAL_FLOATS]), nil otherwise.
    let attentionPartials: UnsafeMutablePointer<Float>?
    private let attentionSegments: Int

    /// Rows of logits an `.all` prefill computes per LM-head product, and their buffer
    /// ([logitRowCapacity][vocab]), allocated by the first `.all` prefill.
    private let logitRowCapacity: Int
    private var logitRows: UnsafeMutablePointer<Float>?

    /// Keys and values: every position for global layers, the window for sliding ones.
    private let cache: KVCache

    /// - Parameters:
    ///   - contextLength: positions to hold; nil = the model's `max_position_embeddings`.
    ///   - kernels: the matrix products to use (default: `makeDefaultKernels(threads: 1)`, this
    ///     CPU's SIMD path on the calling thread; `makeDefaultKernels()` uses every core).
    ///   - batchSize: most tokens per pass through the layers (prompt processing); at least 1.
    ///     The batch buffers take about batchSize * (3 hidden + 2 q + 2 intermediate) floats.
    ///   - cacheType: how the KV cache stores keys and values: f32 (the default here: the exact
    ///     forward pass, as the parity tests compare it) or f16 (half the memory; what the command
    ///     line and `GemmaEngine` use by default, `KVCacheType.default`).
    public init(model: GemmaModel, contextLength: Int? = nil, kernels: (any MatmulKernels)? = nil,
                batchSize: Int = InferenceSession.defaultBatchSize,
                cacheType: KVCacheType = .f32) throws(ModelError) {
        precondition(batchSize >= 1, "batch size must be at least 1, got \(batchSize)")
        let config = model.config
        let maximum = config.maxPositionEmbeddings
        let ctx = contextLength ?? maximum
        guard ctx >= 1, ctx <= maximum else { throw .invalidContextLength(requested: ctx, maximum: maximum) }
        self.model = model
        self.config = config
        self.kernels = kernels ?? makeDefaultKernels(threads: 1)
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
        variant = model.variant
        logitRowCapacity = Self.logitRowCapacity(batchSize: batch)
        self.cacheType = cacheType
        cache = try KVCache(variant: variant, contextLength: ctx, kvDim: kvDim, type: cacheType)
        tokens.reserveCapacity(ctx)

        // One block for all activations, each buffer 64-byte aligned.
        let half = headDim / 2
        let parts = max(1, self.kernels.parallelism)
        attentionParts = parts
        let b = ActivationBuffers(ActivationBuffers.Sizes(config: config, ropeCount: variant.ropeThetas.count,
                                                          batchSize: batch))
        buffers = b
        x = b.x
        xn = b.xn
        proj = b.proj
        q = b.q
        attn = b.attn
        gate = b.gate
        up = b.up
        ropeCos = b.ropeCos
        ropeSin = b.ropeSin
        invFreq = b.invFreq
        logitsBuffer = b.logits
        kBatch = b.kBatch
        vBatch = b.vBatch
        attentionRows = .allocate(capacity: Int(GT_ATTENTION_BLOCK_ROWS) * parts)
        attentionRuns = .allocate(capacity: 3 * parts)
        attentionRunsF16 = .allocate(capacity: 3 * parts)
        if cacheType == .f16 {
            kBatchF16 = .allocate(capacity: batch * kvDim)
            vBatchF16 = .allocate(capacity: batch * kvDim)
        } else {
            kBatchF16 = nil
            vBatchF16 = nil
        }
        attentionScratchBytes = (gt_attention_scratch_bytes(headDim) + 63) & ~63
        attentionScratch = .allocate(byteCount: attentionScratchBytes * parts, alignment: 64)
        let group = heads / kvHeads
        attentionSegments = (ctx - 1) / Int(GT_ATTENTION_SEGMENT) + 1
        if parts > 1, kvHeads < parts, group <= Int(GT_ATTENTION_BLOCK_ROWS) {
            // Pages are touched only as deep as the context gets (0.25 MiB per 8192 positions
            // for 8 rows of 256).
            attentionPartials = .allocate(capacity: kvHeads * attentionSegments * group * (headDim + 2))
        } else {
            attentionPartials = nil
        }

        // inv_freq = 1 / theta^(2i/d), as transformers computes it in f32, for each RoPE base.
        for (r, theta) in variant.ropeThetas.enumerated() {
            let theta = Float(theta)
            for i in 0..<half {
                let exponent = Float(2 * i) / Float(headDim)
                let power = Float(Foundation.pow(Double(theta), Double(exponent)))
                invFreq[r * half + i] = 1 / power
            }
        }
    }

    /// Rows of logits an `.all` prefill computes per LM-head product, for a batch size.
    static func logitRowCapacity(batchSize: Int) -> Int { min(batchSize, 8) }

    deinit {
        buffers.deallocate()
        attentionRows.deallocate()
        attentionRuns.deallocate()
        attentionRunsF16.deallocate()
        kBatchF16?.deallocate()
        vBatchF16?.deallocate()
        attentionScratch.deallocate()
        attentionPartials?.deallocate()
        logitRows?.deallocate()
    }

    /// Bytes of the KV cache when every position is used (sliding-window layers hold only their
    /// window).
    public var kvCacheBytes: Int { cache.byteCount }

    /// Positions layer `layer`'s KV cache holds: the context for a global layer, the window for
    /// a sliding one (a ring buffer).
    public func kvCacheCapacity(layer: Int) -> Int { cache.capacities[layer] }

    /// Bytes of the activation buffers (batch buffers, logits; with an f16 cache, the batch's keys
    /// and values as halves).
    public var activationBufferBytes: Int {
        buffers.byteCount + (logitRows == nil ? 0 : logitRowCapacity * vocab * 4) + (kBatchF16 == nil ? 0 : 2 * batchSize * kvDim * 2)
    }

    /// The logits after the last token fed with `computeLogits: true` (vocab floats). The buffer
    /// is overwritten by the next `forward`; callers may modify it (samplers do).
    public var logits: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: logitsBuffer, count: vocab)
    }

    /// Empties the KV cache.
    public func reset() {
        position = 0
        hasLogits = false
        cache.reset()
        tokens.removeAll(keepingCapacity: true)
    }

    /// Marks the logits as used: a sampler has modified them (repetition penalty, masking), so
    /// they are no longer the prediction after the last token, and the next generation must
    /// compute them again.
    public func invalidateLogits() {
        hasLogits = false
    }

    /// Forgets every position from `newPosition` on (the cache keeps the earlier ones).
    ///
    /// A sliding-window layer's ring no longer holds positions more than a window behind the
    /// furthest one fed; when the window of `newPosition` reaches back to such positions (see
    /// `canRewindInPlace(to:)`), the session is rebuilt by feeding its first `newPosition`
    /// tokens again, which costs a prompt's processing time but gives the same state.
    public func rewind(to newPosition: Int) {
        precondition(newPosition >= 0 && newPosition <= position, "cannot rewind to \(newPosition) from \(position)")
        hasLogits = false
        if cache.canRewind(to: newPosition) {
            position = newPosition
            tokens.removeLast(tokens.count - newPosition)
            return
        }
        let replay = Array(tokens[0..<newPosition])
        reset()
        do {
            try prefill(replay, logits: .none)
        } catch {
            preconditionFailure("re-feeding the session's own tokens failed: \(error)")
        }
    }

    /// Whether `rewind(to:)` can keep the cache as it is (always, without sliding-window layers).
    public func canRewindInPlace(to newPosition: Int) -> Bool {
        newPosition >= 0 && newPosition <= position && cache.canRewind(to: newPosition)
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
                let t = tokens[next]
                embed(t, row: i)
                self.tokens.append(t)
                next = tokens.index(after: next)
            }
            forwardBatch(count: n)
            let isLast = done + n == count
            switch request {
            case .none:
                break
            case .last:
                if isLast {
                    try lmHead(rows: (n - 1)..<n, into: logitsBuffer)
                    hasLogits = true
                }
            case .all(let from, let body):
                try allLogits(batchStart: done, count: n, from: from, isLast: isLast, body)
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
        for layer in model.layers { runLayer(layer, count: n) }
        cache.didWrite(upTo: position + n)
        position += n
    }

    /// One decoder layer for the batch. Gemma 1:
    ///   h += attn(norm(h));  h += mlp(norm(h))
    /// Gemma 2/3 (post-norms):
    ///   h += post_attention_norm(attn(input_norm(h)));  h += post_ffw_norm(mlp(pre_ffw_norm(h)))
    private func runLayer(_ w: LayerWeights, count n: Int) {
        // Attention block.
        forEachRow(n) { i in rmsNorm(x + i * hidden, w.inputNorm, into: xn + i * hidden) }
        kernels.matmul(SharedInputProducts((w.qProj, q), (w.kProj, kBatch), (w.vProj, vBatch)), xn, count: n)
        let rope = variant.layers[w.index].ropeIndex
        forEachRow(n) { i in
            for h in 0..<heads {
                let v = q + i * qDim + h * headDim
                if let qNorm = w.qNorm { rmsNorm(v, qNorm, into: v, count: headDim) }
                rotate(v, row: i, rope: rope)
            }
            for h in 0..<kvHeads {
                let v = kBatch + i * kvDim + h * headDim
                if let kNorm = w.kNorm { rmsNorm(v, kNorm, into: v, count: headDim) }
                rotate(v, row: i, rope: rope)
            }
        }
        if let k16 = kBatchF16, let v16 = vBatchF16 {
            gt_f16_store(k16, kBatch, n * kvDim)
            gt_f16_store(v16, vBatch, n * kvDim)
            attendBatch(layer: w.index, count: n)
            cache.store(layer: w.index, keys: k16, values: v16, position: position, count: n)
        } else {
            attendBatch(layer: w.index, count: n)
            cache.store(layer: w.index, keys: kBatch, values: vBatch, position: position, count: n)
        }
        matmul(w.oProj, attn, proj, count: n)
        // Residual, then the MLP block's input: down(gelu_tanh(gate(x)) * up(x)).
        forEachRow(n) { i in
            let p = proj + i * hidden, xi = x + i * hidden
            if let post = w.postAttentionNorm { rmsNorm(p, post, into: p) }
            add(p, into: xi, count: hidden)
            rmsNorm(xi, w.preFeedforwardNorm, into: xn + i * hidden)
        }
        kernels.matmul(SharedInputProducts((w.gateProj, gate), (w.upProj, up)), xn, count: n)
        forEachRow(n) { i in gt_gelu_tanh_mul(gate + i * intermediate, up + i * intermediate, intermediate) }
        matmul(w.downProj, gate, proj, count: n)
        forEachRow(n) { i in
            let p = proj + i * hidden
            if let post = w.postFeedforwardNorm { rmsNorm(p, post, into: p) }
            add(p, into: x + i * hidden, count: hidden)
        }
    }

    /// Runs `body(i)` for the batch rows i in 0..<n: split between the kernels' threads when
    /// each gets at least 8 rows, in order on this thread otherwise (a token, a short batch).
    /// Every row's work is the same either way, so results do not depend on the split.
    private func forEachRow(_ n: Int, _ body: (Int) -> Void) {
        let parts = min(kernels.parallelism, n / 8)
        guard parts > 1 else {
            for i in 0..<n { body(i) }
            return
        }
        kernels.parallel { part in
            guard part < parts else { return }
            for i in (n * part / parts)..<(n * (part + 1) / parts) { body(i) }
        }
    }

    /// Final norm and LM head (the tied embedding) for batch rows `rows`: the logits of row
    /// rows.lowerBound + k go to out + k * vocab; soft-capped where the model says so. A NaN or
    /// an infinity among them (damaged weights) is an error, not a token.
    private func lmHead(rows: Range<Int>, into out: UnsafeMutablePointer<Float>) throws(InferenceError) {
        for (k, r) in rows.enumerated() { rmsNorm(x + r * hidden, model.finalNorm, into: xn + k * hidden) }
        matmul(model.embedding, xn, out, count: rows.count)
        if let cap = variant.finalSoftcap { gt_softcap(out, rows.count * vocab, cap) }
        guard gt_all_finite(out, rows.count * vocab) != 0 else { throw .nonFiniteLogits }
    }

    /// The `.all` request for one batch (tokens batchStart..<batchStart+n of the prefill).
    private func allLogits(batchStart: Int, count n: Int, from: Int, isLast: Bool,
                           _ body: (Int, UnsafeBufferPointer<Float>) -> Void) throws(InferenceError) {
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
            try lmHead(rows: r..<(r + k), into: rowsOut)
            for j in 0..<k { body(batchStart + r + j, UnsafeBufferPointer(start: rowsOut + j * vocab, count: vocab)) }
            r += k
            if r == n && isLast { logitsBuffer.update(from: rowsOut + (k - 1) * vocab, count: vocab) }
        }
        if isLast {
            if !scored { try lmHead(rows: (n - 1)..<n, into: logitsBuffer) }
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

    /// x / sqrt(mean(x^2) + eps) * (1 + w) over `count` values (default: hidden), in f32 (the
    /// sum of squares in f64). `out` may be `input`.
    private func rmsNorm(_ input: UnsafePointer<Float>, _ w: NormWeights, into out: UnsafeMutablePointer<Float>,
                         count: Int? = nil) {
        let n = count ?? hidden
        var sum: Double = 0
        for i in 0..<n { let v = Double(input[i]); sum += v * v }
        let meanSquare = Float(sum / Double(n))
        let inv = Float(1 / (Double(meanSquare + eps)).squareRoot())
        w.scale.withUnsafeBufferPointer { s in
            for i in 0..<n { out[i] = (input[i] * inv) * s[i] }
        }
    }

    /// cos/sin of position * inv_freq for batch row `row`, for every RoPE base of the model (the
    /// product in f32, as transformers forms it).
    private func setRotation(row: Int, position: Int) {
        let half = headDim / 2
        let p = Float(position)
        for r in 0..<variant.ropeThetas.count {
            let base = (r * batchSize + row) * half
            for i in 0..<half {
                let angle = Double(p * invFreq[r * half + i])
                ropeCos[base + i] = Float(Foundation.cos(angle))
                ropeSin[base + i] = Float(Foundation.sin(angle))
            }
        }
    }

    /// Rotate-half RoPE on one head of batch row `row` with RoPE base `rope`: pairs (i, i + d/2).
    private func rotate(_ v: UnsafeMutablePointer<Float>, row: Int, rope: Int) {
        let half = headDim / 2
        let base = (rope * batchSize + row) * half
        let cos = ropeCos + base, sin = ropeSin + base
        for i in 0..<half {
            let a = v[i], b = v[i + half]
            v[i] = a * cos[i] - b * sin[i]
            v[i + half] = b * cos[i] + a * sin[i]
        }
    }

    /// Causal (and, in a sliding layer, windowed) grouped-query attention of the batch's queries:
    /// token i, at position p = position + i, sees positions lo...p, lo = p - window + 1 in a
    /// sliding layer (at least 0), else 0: the cached ones (lo..<position), then the batch's own
    /// (from kBatch/vBatch) up to itself. Each query head uses the key/value head of its group.
    ///
    /// The tiled kernel (`gt_attention_rows`) takes blocks of query rows that share a KV head:
    /// row r of KV head kv is token r / group, head kv * group + r % group, so one block holds the
    /// whole group for a few tokens and reads each key and value once for all of them. Blocks
    /// (at most 16 rows; smaller when there are fewer blocks than threads, e.g. decoding) go to
    /// the kernels' threads, every parts-th block to a thread (later tokens see more positions,
    /// so striding balances the work). A row's result does not depend on its block or thread.
    private func attendBatch(layer: Int, count n: Int) {
        let group = heads / kvHeads
        let window = variant.layers[layer].window
        let scale = variant.attentionScale
        let softcap = variant.attentionSoftcap ?? 0
        if n == 1, let partials = attentionPartials {
            let current = self.position
            let lo = window.map { max(0, current - $0 + 1) } ?? 0
            let segment = Int(GT_ATTENTION_SEGMENT)
            if current / segment > lo / segment {  // more than one segment: split them
                attendSegments(layer: layer, lo: lo, partials: partials, scale: scale, softcap: softcap)
                return
            }
        }
        let rowsPerKV = n * group
        let maxRows = Int(GT_ATTENTION_BLOCK_ROWS)
        let blocksPerKV = max((rowsPerKV + maxRows - 1) / maxRows,
                              min(rowsPerKV, (attentionParts + kvHeads - 1) / kvHeads))
        let rowsPerBlock = (rowsPerKV + blocksPerKV - 1) / blocksPerKV
        let items = kvHeads * blocksPerKV
        let parts = min(attentionParts, items)
        nonisolated(unsafe) let (q, attn, kBatch, vBatch) = (q, attn, kBatch, vBatch)
        nonisolated(unsafe) let (rowBuffers, runBuffers, scratch) = (attentionRows, attentionRuns, attentionScratch)
        nonisolated(unsafe) let (runBuffersF16, kBatchF16, vBatchF16) = (attentionRunsF16, kBatchF16, vBatchF16)
        let (position, qDim, kvDim, headDim, scratchBytes) = (position, qDim, kvDim, headDim, attentionScratchBytes)
        let cache = self.cache
        let work = { (part: Int) in
            let rows = rowBuffers + part * maxRows, runs = runBuffers + part * 3
            var item = part
            while item < items {
                let kv = item / blocksPerKV, r0 = (item % blocksPerKV) * rowsPerBlock
                item += parts
                let r1 = min(r0 + rowsPerBlock, rowsPerKV)
                guard r0 < r1 else { continue }
                for r in r0..<r1 {
                    let i = r / group, h = kv * group + r % group, p = position + i
                    let lo = window.map { max(0, p - $0 + 1) } ?? 0
                    rows[r - r0] = gt_attention_row(q: q + i * qDim + h * headDim, out: attn + i * qDim + h * headDim,
                                                    lo: lo, hi: p + 1)
                }
                // The positions the block needs: from its first row's lo (the smallest) to its
                // last row's own position: cached ones (a ring's one or two runs), then the batch's.
                let lo = rows[0].lo, column = kv * headDim
                let batchFirst = max(lo, position) - position, last = (r1 - 1) / group
                if let kBatchF16, let vBatchF16 {
                    let runs = runBuffersF16 + part * 3
                    var count = cache.runsF16(layer: layer, from: lo, to: position, column: column, into: runs)
                    let offset = batchFirst * kvDim + column
                    runs[count] = gt_kv_run_f16(keys: kBatchF16 + offset, values: vBatchF16 + offset,
                                                first: position + batchFirst, count: last - batchFirst + 1)
                    count += 1
                    gt_attention_rows_f16(rows, r1 - r0, runs, count, kvDim, headDim, scale, softcap,
                                          scratch + part * scratchBytes)
                    continue
                }
                var count = cache.runs(layer: layer, from: lo, to: position, column: column, into: runs)
                runs[count] = gt_kv_run(keys: kBatch + batchFirst * kvDim + column, values: vBatch + batchFirst * kvDim + column,
                                        first: position + batchFirst, count: last - batchFirst + 1)
                count += 1
                gt_attention_rows(rows, r1 - r0, runs, count, kvDim, headDim, scale, softcap,
                                  scratch + part * scratchBytes)
            }
        }
        if parts == 1 { work(0) } else { kernels.parallel { part in if part < parts { work(part) } } }
    }

    /// Decoding one token with fewer KV heads than threads (the 2B's one KV head, the 270M's):
    /// rather than each thread reading every key and value for some of a group's query heads,
    /// each KV head's positions lo...position are split, by segments (`GT_ATTENTION_SEGMENT`),
    /// into one range per thread; a thread computes its segments' softmax states for the whole
    /// group, and the states are then folded in order. The result is bit-identical to
    /// `attendBatch`'s blocks (gemma_ops.h, "Segments"), and each key is read once.
    private func attendSegments(layer: Int, lo: Int, partials: UnsafeMutablePointer<Float>, scale: Float,
                                softcap: Float) {
        let group = heads / kvHeads, segment = Int(GT_ATTENTION_SEGMENT)
        let firstSegment = lo / segment, segments = position / segment + 1 - firstSegment
        let parts = attentionParts, items = kvHeads * parts
        let floatsPerSegment = group * (headDim + 2), floatsPerHead = attentionSegments * floatsPerSegment
        nonisolated(unsafe) let (q, attn, kBatch, vBatch) = (q, attn, kBatch, vBatch)
        nonisolated(unsafe) let (rowBuffers, runBuffers, scratch) = (attentionRows, attentionRuns, attentionScratch)
        nonisolated(unsafe) let (runBuffersF16, kBatchF16, vBatchF16) = (attentionRunsF16, kBatchF16, vBatchF16)
        let (position, headDim, kvDim, scratchBytes) = (position, headDim, kvDim, attentionScratchBytes)
        let cache = self.cache
        // The query rows of KV head kv (its group's heads of the one token) into `rows`.
        let fillRows = { (kv: Int, rows: UnsafeMutablePointer<gt_attention_row>) in
            for r in 0..<group {
                let h = kv * group + r
                rows[r] = gt_attention_row(q: q + h * headDim, out: attn + h * headDim, lo: lo, hi: position + 1)
            }
        }
        let work = { (part: Int) in
            let rows = rowBuffers + part * Int(GT_ATTENTION_BLOCK_ROWS)
            var item = part
            while item < items {
                let kv = item / parts, range = item % parts
                item += parts
                let begin = firstSegment + range * segments / parts, end = firstSegment + (range + 1) * segments / parts
                guard begin < end else { continue }
                fillRows(kv, rows)
                let out = partials + kv * floatsPerHead + (begin - firstSegment) * floatsPerSegment
                let column = kv * headDim
                if let kBatchF16, let vBatchF16 {
                    let runs = runBuffersF16 + part * 3
                    var count = cache.runsF16(layer: layer, from: lo, to: position, column: column, into: runs)
                    runs[count] = gt_kv_run_f16(keys: kBatchF16 + column, values: vBatchF16 + column, first: position,
                                                count: 1)
                    count += 1
                    gt_attention_partials_f16(rows, group, runs, count, kvDim, headDim, scale, softcap, begin, end, out,
                                              scratch + part * scratchBytes)
                } else {
                    let runs = runBuffers + part * 3
                    var count = cache.runs(layer: layer, from: lo, to: position, column: column, into: runs)
                    runs[count] = gt_kv_run(keys: kBatch + column, values: vBatch + column, first: position, count: 1)
                    count += 1
                    gt_attention_partials(rows, group, runs, count, kvDim, headDim, scale, softcap, begin, end, out,
                                          scratch + part * scratchBytes)
                }
            }
        }
        kernels.parallel { part in if part < parts { work(part) } }
        for kv in 0..<kvHeads {
            fillRows(kv, rowBuffers)
            gt_attention_merge(rowBuffers, group, partials + kv * floatsPerHead, segments, headDim)
        }
    }
}
