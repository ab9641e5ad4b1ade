import Foundation
import GemmaKernels

/// The per-conversation half of a model: KV cache, activation buffers and the current position.
/// Everything is allocated once, when the session is created; `forward` allocates nothing.
///
/// A session is used from one thread at a time (it is not Sendable); the `GemmaModel` it reads
/// is shared.
public final class InferenceSession {
    public let model: GemmaModel
    public let config: ModelConfig
    public let kernels: any MatmulKernels
    /// Positions the KV cache holds.
    public let contextLength: Int
    /// Tokens in the KV cache: the position of the next token fed.
    public private(set) var position = 0
    /// True when the logits buffer holds the prediction after the last token fed.
    public private(set) var hasLogits = false

    private let hidden: Int
    private let heads: Int
    private let kvHeads: Int
    private let headDim: Int
    private let qDim: Int
    private let kvDim: Int
    private let eps: Float
    private let attentionScale: Float

    // Activations (f32), one token's worth.
    private let x: UnsafeMutablePointer<Float>       // residual stream [hidden]
    private let xn: UnsafeMutablePointer<Float>      // normed input of a block [hidden]
    private let proj: UnsafeMutablePointer<Float>    // o_proj / down_proj output [hidden]
    private let q: UnsafeMutablePointer<Float>       // [heads * headDim]
    private let attn: UnsafeMutablePointer<Float>    // attention output [heads * headDim]
    private let gate: UnsafeMutablePointer<Float>    // [intermediate]
    private let up: UnsafeMutablePointer<Float>      // [intermediate]
    private let scores: UnsafeMutablePointer<Float>  // [contextLength]
    private let invFreq: UnsafeMutablePointer<Float> // [headDim / 2]
    private let ropeCos: UnsafeMutablePointer<Float> // [headDim / 2] for the current position
    private let ropeSin: UnsafeMutablePointer<Float>
    private let logitsBuffer: UnsafeMutablePointer<Float> // [vocab]
    private let activations: UnsafeMutableRawPointer
    private let activationBytes: Int

    /// KV cache: per layer, [contextLength][kvDim] keys then the same for values. Reserved with
    /// MAP_NORESERVE, so only the positions actually used take memory.
    private let cache: UnsafeMutablePointer<Float>
    private let cacheBytes: Int
    private let layerStride: Int

    /// - Parameters:
    ///   - contextLength: positions to hold; nil = the model's `max_position_embeddings`.
    ///   - kernels: the matrix products to use (default: single-threaded scalar).
    public init(model: GemmaModel, contextLength: Int? = nil, kernels: (any MatmulKernels)? = nil) throws(ModelError) {
        let config = model.config
        let maximum = config.maxPositionEmbeddings
        let ctx = contextLength ?? maximum
        guard ctx >= 1, ctx <= maximum else { throw .invalidContextLength(requested: ctx, maximum: maximum) }
        self.model = model
        self.config = config
        self.kernels = kernels ?? ScalarKernels()
        self.contextLength = ctx
        hidden = config.hiddenSize
        heads = config.numAttentionHeads
        kvHeads = config.numKeyValueHeads
        headDim = config.headDim
        qDim = heads * headDim
        kvDim = kvHeads * headDim
        eps = Float(config.rmsNormEps)
        attentionScale = Float(1.0 / Double(headDim).squareRoot())

        // One block for all activations, each buffer 64-byte aligned.
        let sizes = [hidden, hidden, hidden, qDim, qDim, config.intermediateSize, config.intermediateSize,
                     ctx, headDim / 2, headDim / 2, headDim / 2, config.vocabSize]
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
        (x, xn, proj, q, attn, gate, up, scores, invFreq, ropeCos, ropeSin, logitsBuffer) =
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
        for i in 0..<headDim / 2 {
            let exponent = Float(2 * i) / Float(headDim)
            let power = Float(Foundation.pow(Double(theta), Double(exponent)))
            invFreq[i] = 1 / power
        }
    }

    deinit {
        munmap(cache, cacheBytes)
        activations.deallocate()
    }

    /// Bytes of the KV cache when every position is used.
    public var kvCacheBytes: Int { cacheBytes }

    /// The logits after the last token fed with `computeLogits: true` (vocab floats). The buffer
    /// is overwritten by the next `forward`; callers may modify it (samplers do).
    public var logits: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: logitsBuffer, count: config.vocabSize)
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
        guard tokens.count <= remainingContext else { throw .contextFull(contextLength: contextLength) }
        var i = 0
        for t in tokens {
            i += 1
            try forward(token: t, computeLogits: computeLogits && i == tokens.count)
        }
    }

    /// Runs one token through the model at the current position, appends its keys and values to
    /// the cache and advances the position. With `computeLogits`, fills `logits` with the scores
    /// of the next token (the LM head is skipped otherwise: prompt tokens don't need it).
    public func forward(token: Int, computeLogits: Bool = true) throws(InferenceError) {
        guard token >= 0, token < config.vocabSize else { throw .tokenOutOfRange(token: token, vocabularySize: config.vocabSize) }
        guard position < contextLength else { throw .contextFull(contextLength: contextLength) }
        hasLogits = false

        // Embedding, scaled by the normaliser the converter stored (rounded as the reference does).
        model.embedding.dequantizeRow(token, into: x)
        let scale = config.embeddingScale
        for i in 0..<hidden { x[i] *= scale }

        setRotation(position: position)
        switch model.architecture {
        case .gemma:
            for layer in model.layers { runGemmaLayer(layer) }
        }

        position += 1
        guard computeLogits else { return }
        rmsNorm(x, model.finalNorm, into: xn)
        kernels.matvec(model.embedding, xn, logitsBuffer)
        hasLogits = true
    }

    // MARK: - Gemma 1 layer

    private func runGemmaLayer(_ w: LayerWeights) {
        let kCache = cache + w.index * layerStride + position * kvDim
        let vCache = cache + w.index * layerStride + contextLength * kvDim + position * kvDim

        // Attention block.
        rmsNorm(x, w.inputNorm, into: xn)
        kernels.matvec(w.qProj, xn, q)
        kernels.matvec(w.kProj, xn, kCache)
        kernels.matvec(w.vProj, xn, vCache)
        for h in 0..<heads { rotate(q + h * headDim) }
        for h in 0..<kvHeads { rotate(kCache + h * headDim) }
        attend(layer: w.index)
        kernels.matvec(w.oProj, attn, proj)
        for i in 0..<hidden { x[i] += proj[i] }

        // MLP block: down(gelu_tanh(gate(x)) * up(x)).
        rmsNorm(x, w.postAttentionNorm, into: xn)
        kernels.matvec(w.gateProj, xn, gate)
        kernels.matvec(w.upProj, xn, up)
        geluTanhMultiply(gate, up, count: config.intermediateSize)
        kernels.matvec(w.downProj, gate, proj)
        for i in 0..<hidden { x[i] += proj[i] }
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

    /// cos/sin of position * inv_freq (the product in f32, as transformers forms it).
    private func setRotation(position: Int) {
        let p = Float(position)
        for i in 0..<headDim / 2 {
            let angle = Double(p * invFreq[i])
            ropeCos[i] = Float(Foundation.cos(angle))
            ropeSin[i] = Float(Foundation.sin(angle))
        }
    }

    /// Rotate-half RoPE on one head: pairs (i, i + d/2).
    private func rotate(_ v: UnsafeMutablePointer<Float>) {
        let half = headDim / 2
        for i in 0..<half {
            let a = v[i], b = v[i + half]
            let c = ropeCos[i], s = ropeSin[i]
            v[i] = a * c - b * s
            v[i + half] = b * c + a * s
        }
    }

    /// Causal grouped-query attention of the current token over positions 0...position.
    private func attend(layer: Int) {
        let keys = UnsafePointer(cache + layer * layerStride)
        let values = UnsafePointer(cache + layer * layerStride + contextLength * kvDim)
        let group = heads / kvHeads
        let n = position + 1
        for h in 0..<heads {
            let qh = UnsafePointer(q + h * headDim)
            let kvOffset = (h / group) * headDim
            var maxScore = -Float.infinity
            for t in 0..<n {
                let k = keys + t * kvDim + kvOffset
                var dot: Float = 0
                for i in 0..<headDim { dot += qh[i] * k[i] }
                let s = dot * attentionScale
                scores[t] = s
                if s > maxScore { maxScore = s }
            }
            var sum: Float = 0
            for t in 0..<n {
                let e = expf(scores[t] - maxScore)
                scores[t] = e
                sum += e
            }
            let out = attn + h * headDim
            out.update(repeating: 0, count: headDim)
            for t in 0..<n {
                let p = scores[t] / sum
                let v = values + t * kvDim + kvOffset
                for i in 0..<headDim { out[i] += p * v[i] }
            }
        }
    }

    /// gate = gelu_tanh(gate) * up, in f32.
    private func geluTanhMultiply(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        let c: Float = 0.7978845608028654 // sqrt(2 / pi)
        for i in 0..<count {
            let g = gate[i]
            let inner = c * (g + 0.044715 * g * g * g)
            gate[i] = 0.5 * g * (1 + tanhf(inner)) * up[i]
        }
    }
}
