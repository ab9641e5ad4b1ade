import Dispatch
import GemmaKernels
import GemmaTiny

/// How a source row becomes f32.
enum RowDecoder: Sendable {
    /// A safetensors row: f32, bf16 or f16 (GT_SRC_*).
    case widen(Int32)
    /// A GGUF row of a ggml type (GT_GGML_*), minus `subtract` after dequantization (1 for
    /// Gemma norm weights, which GGUF stores as 1 + w).
    case gguf(type: Int32, subtract: Float)
}

/// Quantizes and compresses one tensor, chunk by chunk.
///
/// A chunk is as many whole rows as fill one zstd frame of output. Workers take a wave of
/// chunks at a time (two per thread), each widening its source rows to f32, checking them,
/// quantizing and compressing; the chunks are then hashed and written in order. Peak memory is
/// four frames of output per thread (two waves in flight) plus a row of f32 scratch.
final class ChunkPipeline {
    struct Result {
        var storedBytes: Int
        var relativeRMSError: Double?
    }

    let threads: Int
    let compress: Bool
    let zstdLevel: Int
    let measureError: Bool

    init(threads: Int, compress: Bool, zstdLevel: Int, measureError: Bool) {
        self.threads = max(1, threads)
        self.compress = compress
        self.zstdLevel = zstdLevel
        self.measureError = measureError
    }

    /// Per-chunk output of a worker. Each slot is touched by one worker during a wave.
    private final class Slot: @unchecked Sendable {
        let raw: UnsafeMutableRawBufferPointer
        let scratch: UnsafeMutablePointer<Float>
        let dequantized: UnsafeMutablePointer<Float>
        var rawLength = 0
        var frames: [[UInt8]] = []
        var error: ConversionError?
        var errorSums = (err: 0.0, ref: 0.0)
        var compressor: ZstdFrames.Compressor?

        init(rawCapacity: Int, rowLength: Int) {
            raw = .allocate(byteCount: rawCapacity, alignment: 64)
            scratch = .allocate(capacity: rowLength)
            dequantized = .allocate(capacity: rowLength)
        }

        deinit {
            raw.deallocate()
            scratch.deallocate()
            dequantized.deallocate()
        }
    }

    /// `bytes` holds the tensor's rows, `inRowBytes` each, in the order of `entry.shape`.
    func run(entry: TensorPlan.Entry, decoder: RowDecoder, inRowBytes: Int, bytes: UnsafeRawBufferPointer,
             writer: ModelFileWriter, sourceRelease: (Range<Int>) -> Void = { _ in }, progress: (Int) -> Void) throws -> Result {
        let rowLength = entry.shape.last!
        let rows = entry.shape.reduce(1, *) / rowLength
        let outRowBytes = entry.type.rowBytes(rowLength)!
        precondition(bytes.count >= rows * inRowBytes, "source of \(entry.name) is too short")
        let rowsPerChunk = max(1, ZstdFrames.frameSize / outRowBytes)
        let chunkCount = (rows + rowsPerChunk - 1) / rowsPerChunk
        let waveSize = min(chunkCount, threads * 2)
        let slotSets = (0..<2).map { _ in
            (0..<waveSize).map { _ in Slot(rawCapacity: rowsPerChunk * outRowBytes, rowLength: rowLength) }
        }
        let type = Int32(entry.type.rawValue)
        let name = entry.name
        let (compress, level, measure) = (compress, zstdLevel, measureError)
        let source = SendablePointer(bytes.baseAddress!)

        try writer.beginTensor(name: entry.name, type: entry.type, shape: entry.shape, compression: compress ? .zstd : .none)
        var hash = gt_xxh64_state()
        gt_xxh64_reset(&hash, 0)
        var stored = 0
        var errorSums = (err: 0.0, ref: 0.0)

        // Fills `slot` with chunk `chunk`: widen, check, quantize, (measure), compress.
        let process: @Sendable (Slot, Int) -> Void = { slot, chunk in
            let firstRow = chunk * rowsPerChunk
            let rowCount = min(rowsPerChunk, rows - firstRow)
            slot.rawLength = rowCount * outRowBytes
            slot.frames = []
            slot.error = nil
            slot.errorSums = (0, 0)
            for r in 0..<rowCount {
                let row = firstRow + r
                switch decoder {
                case .widen(let srcType):
                    gt_widen_to_f32(srcType, source.pointer + row * inRowBytes, rowLength, slot.scratch)
                case .gguf(let ggmlType, let subtract):
                    guard gt_gguf_dequantize_row(ggmlType, source.pointer + row * inRowBytes, rowLength, slot.scratch) == 0 else {
                        slot.error = .output("internal error: cannot dequantize \(name) (ggml type \(ggmlType))")
                        return
                    }
                    if subtract != 0 {
                        for i in 0..<rowLength { slot.scratch[i] = slot.scratch[i] - subtract }
                    }
                }
                let bad = gt_first_nonfinite(slot.scratch, rowLength)
                if bad < rowLength {
                    slot.error = .nonFiniteWeight(tensor: name, index: row * rowLength + bad)
                    return
                }
                let out = slot.raw.baseAddress! + r * outRowBytes
                gt_quantize_row(type, slot.scratch, rowLength, out)
                if measure {
                    gt_dequantize_row(type, out, rowLength, slot.dequantized)
                    var (err, ref) = slot.errorSums
                    gt_error_sums(slot.scratch, slot.dequantized, rowLength, &err, &ref)
                    slot.errorSums = (err, ref)
                }
            }
            guard compress else { return }
            do {
                if slot.compressor == nil { slot.compressor = try ZstdFrames.Compressor(level: level) }
                for start in stride(from: 0, to: slot.rawLength, by: ZstdFrames.frameSize) {
                    let end = min(start + ZstdFrames.frameSize, slot.rawLength)
                    slot.frames.append(try slot.compressor!.compressFrame(UnsafeRawBufferPointer(rebasing: slot.raw[start..<end])))
                }
            } catch {
                slot.error = .output("zstd compression of \(name) failed: \(error)")
            }
        }

        // Hashes and writes a finished wave, in chunk order.
        func write(_ wave: ArraySlice<Slot>, firstChunk: Int) throws {
            for slot in wave {
                if let error = slot.error { throw error }
                let raw = UnsafeRawBufferPointer(rebasing: slot.raw[..<slot.rawLength])
                gt_xxh64_update(&hash, raw.baseAddress, raw.count)
                if compress {
                    for frame in slot.frames {
                        try frame.withUnsafeBytes { try writer.append($0) }
                        stored += frame.count
                    }
                } else {
                    try writer.append(raw)
                    stored += raw.count
                }
                errorSums.err += slot.errorSums.err
                errorSums.ref += slot.errorSums.ref
            }
            // The wave's source rows are done with: drop their pages so that a large tensor's
            // mapped input does not pile up in RSS.
            let doneBytes = min(rows, (firstChunk + wave.count) * rowsPerChunk) * inRowBytes
            sourceRelease(firstChunk * rowsPerChunk * inRowBytes ..< doneBytes)
            progress(doneBytes)
        }

        // Two sets of slots: workers fill one wave while this thread writes the previous one.
        var pending: (slots: ArraySlice<Slot>, firstChunk: Int)? = nil
        for (index, waveStart) in stride(from: 0, to: chunkCount, by: waveSize).enumerated() {
            let count = min(waveSize, chunkCount - waveStart)
            let wave = slotSets[index % 2].prefix(count)
            let workers = min(threads, count)
            let group = DispatchGroup()
            DispatchQueue.global().async(group: group) {
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    for k in stride(from: worker, to: count, by: workers) { process(wave[k], waveStart + k) }
                }
            }
            var writeError: Error?
            if let p = pending {
                do { try write(p.slots, firstChunk: p.firstChunk) } catch { writeError = error }
            }
            group.wait()
            if let writeError { throw writeError }
            pending = (wave, waveStart)
        }
        if let p = pending { try write(p.slots, firstChunk: p.firstChunk) }
        try writer.endTensor(length: rows * outRowBytes, checksum: gt_xxh64_digest(&hash))
        let relative: Double? = measure ? (errorSums.ref > 0 ? (errorSums.err / errorSums.ref).squareRoot() : 0) : nil
        return Result(storedBytes: stored, relativeRMSError: relative)
    }
}

/// A read-only pointer into a mapping that outlives the workers using it.
struct SendablePointer: @unchecked Sendable {
    let pointer: UnsafeRawPointer
    init(_ pointer: UnsafeRawPointer) { self.pointer = pointer }
}
