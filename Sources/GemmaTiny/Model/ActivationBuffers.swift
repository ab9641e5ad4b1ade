/// The f32 activation buffers of one `InferenceSession`, by name, carved from one zeroed block
/// (each buffer 64-byte aligned). Batch buffers hold one row per token of the batch, rows
/// contiguous: row i of `x` is x + i * hidden, and so on.
struct ActivationBuffers {
    /// Floats of each buffer, padded to 64 bytes: what `init` carves, and what `MemoryEstimate`
    /// counts before a model is loaded.
    struct Sizes: Equatable {
        var x, xn, proj, q, attn, gate, up, ropeCos, ropeSin, invFreq, logits, kBatch, vBatch: Int

        init(config: ModelConfig, ropeCount ropes: Int, batchSize batch: Int) {
            let hidden = config.hiddenSize, intermediate = config.intermediateSize
            let qDim = config.numAttentionHeads * config.headDim, kvDim = config.numKeyValueHeads * config.headDim
            let half = config.headDim / 2
            func padded(_ n: Int) -> Int { (n + 15) & ~15 }
            x = padded(batch * hidden)
            xn = padded(batch * hidden)
            proj = padded(batch * hidden)
            q = padded(batch * qDim)
            attn = padded(batch * qDim)
            gate = padded(batch * intermediate)
            up = padded(batch * intermediate)
            ropeCos = padded(ropes * batch * half)
            ropeSin = padded(ropes * batch * half)
            invFreq = padded(ropes * half)
            logits = padded(config.vocabSize)
            kBatch = padded(batch * kvDim)
            vBatch = padded(batch * kvDim)
        }

        var totalFloats: Int {
            x + xn + proj + q + attn + gate + up + ropeCos + ropeSin + invFreq + logits + kBatch + vBatch
        }
    }

    /// The residual stream [batch][hidden].
    let x: UnsafeMutablePointer<Float>
    /// The normed input of a block [batch][hidden].
    let xn: UnsafeMutablePointer<Float>
    /// o_proj / down_proj output [batch][hidden].
    let proj: UnsafeMutablePointer<Float>
    /// Queries [batch][heads * headDim].
    let q: UnsafeMutablePointer<Float>
    /// Attention output [batch][heads * headDim].
    let attn: UnsafeMutablePointer<Float>
    /// The MLP's gate and up projections [batch][intermediate].
    let gate: UnsafeMutablePointer<Float>
    let up: UnsafeMutablePointer<Float>
    /// Each token's rotation, cos and sin [ropeThetas][batch][headDim / 2].
    let ropeCos: UnsafeMutablePointer<Float>
    let ropeSin: UnsafeMutablePointer<Float>
    /// RoPE inverse frequencies [ropeThetas][headDim / 2].
    let invFreq: UnsafeMutablePointer<Float>
    /// The logits after the last token [vocab].
    let logits: UnsafeMutablePointer<Float>
    /// The batch's keys and values [batch][kvDim].
    let kBatch: UnsafeMutablePointer<Float>
    let vBatch: UnsafeMutablePointer<Float>

    private let block: UnsafeMutableRawPointer
    let byteCount: Int

    init(_ sizes: Sizes) {
        byteCount = sizes.totalFloats * MemoryLayout<Float>.size
        block = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 64)
        var next = block.initializeMemory(as: Float.self, repeating: 0, count: sizes.totalFloats)
        x = next; next += sizes.x
        xn = next; next += sizes.xn
        proj = next; next += sizes.proj
        q = next; next += sizes.q
        attn = next; next += sizes.attn
        gate = next; next += sizes.gate
        up = next; next += sizes.up
        ropeCos = next; next += sizes.ropeCos
        ropeSin = next; next += sizes.ropeSin
        invFreq = next; next += sizes.invFreq
        logits = next; next += sizes.logits
        kBatch = next; next += sizes.kBatch
        vBatch = next
    }

    func deallocate() {
        block.deallocate()
    }
}
