import Foundation
import GemmaKernels
import GemmaQuantizeKernels
import GemmaTiny

/// How a source row becomes f32.
enum RowDecoder: Sendable {
    /// A safetensors row: f32, bf16 or f16 (GT_SRC_*).
    case widen(Int32)
    /// A GGUF row of a ggml type (GT_GGML_*), minus `subtract` after dequantization (1 for
    /// Gemma norm weights, which GGUF stores as 1 + w).
    case gguf(type: Int32, subtract: Float)
    /// A GGUF row of ggml type `type` already in the output type's layout (Q4_K / Q6_K stored
    /// as q4k / q6k): copied byte for byte (its quantization error is 0) once its values are
    /// checked to be finite.
    case copy(type: Int32)
}

/// Quantizes and compresses every tensor of a model file, chunk by chunk, on a few threads.
///
/// A chunk is as many whole rows of one tensor as fill one zstd frame of output (4 MiB). The
/// chunks of all tensors form one sequence, in file order. Worker threads take the next chunk
/// as soon as they are free, whatever tensor it belongs to (so a small tensor never leaves a
/// thread idle, and no thread waits for the others at tensor boundaries), and each widens,
/// checks, quantizes and compresses its chunk in a slot of a small ring. The calling thread
/// writes the finished chunks in order: it hashes them, appends them to the file, and drops
/// the source pages they came from. A worker runs at most `slots` chunks ahead of the writer,
/// so peak memory is `slots` x (4 MiB of output + its compressed frame) plus a row of scratch
/// per slot, whatever the model's size.
final class ChunkPipeline {
    struct Result {
        var storedBytes: Int
        var compressed: Bool
        var relativeRMSError: Double?
    }

    /// One tensor to convert: `bytes` holds its rows, `inRowBytes` each, in the order of
    /// `entry.shape`; `release` is told which byte ranges of `bytes` are finished with, and
    /// `prefetch` which will be read soon.
    struct Job {
        var entry: TensorPlan.Entry
        var decoder: RowDecoder
        var inRowBytes: Int
        var bytes: UnsafeRawBufferPointer
        var release: (Range<Int>) -> Void = { _ in }
        var prefetch: (Range<Int>) -> Void = { _ in }
    }

    let threads: Int
    let compression: CompressionChoice
    let zstdLevel: Int
    let measureError: Bool

    init(threads: Int, compression: CompressionChoice, zstdLevel: Int, measureError: Bool) {
        self.threads = max(1, threads)
        self.compression = compression
        self.zstdLevel = zstdLevel
        self.measureError = measureError
    }

    /// The chunking of one tensor.
    private struct Layout: Sendable {
        let type: Int32
        let name: String
        let decoder: RowDecoder
        let source: SendablePointer
        let inRowBytes: Int
        let rowLength: Int
        let rows: Int
        let outRowBytes: Int
        let rowsPerChunk: Int
        let chunkCount: Int
        /// Index of the tensor's first chunk in the whole sequence.
        let firstChunk: Int

        func rowRange(chunk: Int) -> Range<Int> {
            let first = chunk * rowsPerChunk
            return first ..< min(rows, first + rowsPerChunk)
        }
    }

    /// One chunk's buffers and results. Between its worker's claim and the writer's release,
    /// only that worker touches it; then only the writer (the ring's lock orders the two).
    private final class Slot: @unchecked Sendable {
        let raw: UnsafeMutableRawBufferPointer
        let stored: UnsafeMutableRawBufferPointer
        let scratch: UnsafeMutablePointer<Float>
        let dequantized: UnsafeMutablePointer<Float>?
        var rawLength = 0
        var frameLengths: [Int] = []
        var error: ConversionError?
        var errorSums = (err: 0.0, ref: 0.0)
        var compressor: ZstdFrames.Compressor?
        /// The chunk (index in the whole sequence) whose results the slot holds, once complete.
        var ready = -1

        init(rawCapacity: Int, storedCapacity: Int, rowLength: Int, measure: Bool) {
            raw = .allocate(byteCount: max(1, rawCapacity), alignment: 64)
            stored = .allocate(byteCount: max(1, storedCapacity), alignment: 64)
            scratch = .allocate(capacity: max(1, rowLength))
            dequantized = measure ? .allocate(capacity: max(1, rowLength)) : nil
        }

        deinit {
            raw.deallocate()
            stored.deallocate()
            scratch.deallocate()
            dequantized?.deallocate()
        }
    }

    /// The ring's shared state, under `condition`'s lock.
    private final class Ring: @unchecked Sendable {
        let condition = NSCondition()
        let slots: [Slot]
        let layouts: [Layout]
        /// For each chunk of the sequence: its tensor (index into `layouts`).
        let chunkTensor: [Int]
        var nextChunk = 0
        var written = 0
        var stop = false
        /// Per tensor, once the writer has seen its first chunk: whether it is stored compressed
        /// (later chunks of a tensor stored as it is skip the compression).
        var storedCompressed: [Bool?]

        init(slots: [Slot], layouts: [Layout], chunkTensor: [Int]) {
            self.slots = slots
            self.layouts = layouts
            self.chunkTensor = chunkTensor
            self.storedCompressed = Array(repeating: nil, count: layouts.count)
        }
    }

    /// Converts `jobs` in order into `writer` (one tensor each). `progress` receives the index of
    /// the tensor under way and how many of its input bytes are done.
    func run(jobs: [Job], writer: ModelFileWriter, progress: (_ tensor: Int, _ doneBytes: Int) -> Void) throws -> [Result] {
        var layouts: [Layout] = []
        var chunkTensor: [Int] = []
        var rawCapacity = 0, storedCapacity = 0, maxRow = 0
        for (index, job) in jobs.enumerated() {
            let rowLength = job.entry.shape.last!
            let rows = job.entry.shape.reduce(1, *) / max(1, rowLength)
            let outRowBytes = job.entry.type.rowBytes(rowLength)!
            precondition(job.bytes.count >= rows * job.inRowBytes, "source of \(job.entry.name) is too short")
            let rowsPerChunk = max(1, ZstdFrames.frameSize / max(1, outRowBytes))
            let chunkCount = (rows + rowsPerChunk - 1) / rowsPerChunk
            layouts.append(Layout(type: Int32(job.entry.type.rawValue), name: job.entry.name, decoder: job.decoder,
                                  source: SendablePointer(job.bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!),
                                  inRowBytes: job.inRowBytes, rowLength: rowLength, rows: rows, outRowBytes: outRowBytes,
                                  rowsPerChunk: rowsPerChunk, chunkCount: chunkCount, firstChunk: chunkTensor.count))
            chunkTensor += repeatElement(index, count: chunkCount)
            let chunkBytes = min(rows, rowsPerChunk) * outRowBytes
            rawCapacity = max(rawCapacity, chunkBytes)
            // A chunk is one frame, or several when a single row exceeds a frame.
            let frames = (chunkBytes + ZstdFrames.frameSize - 1) / ZstdFrames.frameSize
            storedCapacity = max(storedCapacity, frames * ZstdFrames.bound(min(chunkBytes, ZstdFrames.frameSize)))
            maxRow = max(maxRow, rowLength)
        }
        let total = chunkTensor.count
        let workers = min(threads, max(1, total))
        // Four chunks per worker (8 MiB each, raw and compressed) and two more, so that the
        // workers run on while the writer waits for the disk (converting the 2B shape with 5
        // slots, they waited ~1 s for a free slot in a 5.5 s run; with 12, under 0.2 s).
        let slotCount = min(max(1, total), 4 * workers + 2, 64)
        let (compress, level, measure) = (compression != .never, zstdLevel, measureError)
        let slots = (0..<slotCount).map { _ in
            Slot(rawCapacity: rawCapacity, storedCapacity: compress ? storedCapacity : 0, rowLength: maxRow, measure: measure)
        }
        let ring = Ring(slots: slots, layouts: layouts, chunkTensor: chunkTensor)

        // Workers: claim the next chunk once its slot has been written, fill it, mark it ready.
        let finished = DispatchGroup()
        for _ in 0..<workers {
            finished.enter()
            let thread = Thread {
                defer { finished.leave() }
                while true {
                    ring.condition.lock()
                    while !ring.stop && ring.nextChunk < total && ring.nextChunk - ring.written >= slotCount {
                        ring.condition.wait()
                    }
                    if ring.stop || ring.nextChunk >= total {
                        ring.condition.unlock()
                        return
                    }
                    let chunk = ring.nextChunk
                    ring.nextChunk += 1
                    let decided = ring.storedCompressed[ring.chunkTensor[chunk]]
                    ring.condition.unlock()

                    let slot = ring.slots[chunk % slotCount]
                    let layout = ring.layouts[ring.chunkTensor[chunk]]
                    Self.process(slot: slot, layout: layout, chunk: chunk - layout.firstChunk,
                                 compress: compress && decided != false, level: level, measure: measure)

                    ring.condition.lock()
                    slot.ready = chunk
                    ring.condition.broadcast()
                    ring.condition.unlock()
                }
            }
            thread.name = "gemma-quantize worker"
            thread.start()
        }
        defer {
            ring.condition.lock()
            ring.stop = true
            ring.condition.broadcast()
            ring.condition.unlock()
            finished.wait()
        }

        // Asks the kernel to read a chunk's source ahead of its use (two rings ahead of the
        // writer), in case the checkpoint is not in the page cache.
        func prefetch(_ sequence: Int) {
            guard sequence < total else { return }
            let index = chunkTensor[sequence]
            let rows = layouts[index].rowRange(chunk: sequence - layouts[index].firstChunk)
            jobs[index].prefetch(rows.lowerBound * jobs[index].inRowBytes ..< rows.upperBound * jobs[index].inRowBytes)
        }
        for sequence in 0 ..< 2 * slotCount { prefetch(sequence) }

        // The writer: chunks in order, tensor by tensor. `auto` compresses at most the share of
        // the tensor bytes that the runtime decompresses into memory (ModelLoader.inMemoryShare),
        // so that an auto file is always mapped as it is, never copied to a sibling; tensors
        // that do not fit in what is left are stored as they are (file order, so the bytes do
        // not depend on the threads).
        let tensorBytes = layouts.reduce(0) { $0 + $1.rows * $1.outRowBytes }
        var autoBudgetLeft = Int(ModelLoader.inMemoryShare * Double(tensorBytes))
        var results: [Result] = []
        for (index, job) in jobs.enumerated() {
            let layout = layouts[index]
            progress(index, 0)
            var hash = gt_xxh64_state()
            gt_xxh64_reset(&hash, 0)
            var stored = 0
            var errorSums = (err: 0.0, ref: 0.0)
            var compressTensor = false
            for chunk in 0..<layout.chunkCount {
                let sequence = layout.firstChunk + chunk
                let slot = slots[sequence % slotCount]
                ring.condition.lock()
                while slot.ready != sequence { ring.condition.wait() }
                ring.condition.unlock()

                if let error = slot.error { throw error }
                if chunk == 0 {
                    // The tensor's first frame decides how all of it is stored (its rows are
                    // of one kind; the writer cannot wait for the whole tensor).
                    let length = layout.rows * layout.outRowBytes
                    compressTensor = Self.storesCompressed(compression, rawLength: slot.rawLength,
                                                           compressedLength: slot.frameLengths.reduce(0, +),
                                                           tensorLength: length, autoBudgetLeft: autoBudgetLeft)
                    if compressTensor { autoBudgetLeft -= length }
                    ring.condition.lock()
                    ring.storedCompressed[index] = compressTensor
                    ring.condition.unlock()
                    try writer.beginTensor(name: job.entry.name, type: job.entry.type, shape: job.entry.shape,
                                           compression: compressTensor ? .zstd : .none)
                }
                let raw = UnsafeRawBufferPointer(rebasing: slot.raw[..<slot.rawLength])
                gt_xxh64_update(&hash, raw.baseAddress, raw.count)
                if compressTensor {
                    var offset = 0
                    for length in slot.frameLengths {
                        try writer.append(UnsafeRawBufferPointer(rebasing: slot.stored[offset ..< offset + length]))
                        offset += length
                    }
                    stored += offset
                } else {
                    try writer.append(raw)
                    stored += raw.count
                }
                errorSums.err += slot.errorSums.err
                errorSums.ref += slot.errorSums.ref

                ring.condition.lock()
                ring.written = sequence + 1
                ring.condition.broadcast()
                ring.condition.unlock()

                // The chunk's source rows are done with: drop their pages so that the mapped
                // input does not pile up in RSS.
                let rows = layout.rowRange(chunk: chunk)
                job.release(rows.lowerBound * job.inRowBytes ..< rows.upperBound * job.inRowBytes)
                prefetch(sequence + 2 * slotCount)
                progress(index, rows.upperBound * job.inRowBytes)
            }
            try writer.endTensor(length: layout.rows * layout.outRowBytes, checksum: gt_xxh64_digest(&hash))
            let relative: Double? = measure ? (errorSums.ref > 0 ? (errorSums.err / errorSums.ref).squareRoot() : 0) : nil
            results.append(Result(storedBytes: stored, compressed: compressTensor, relativeRMSError: relative))
        }
        return results
    }

    /// Whether a tensor of `tensorLength` bytes, whose first chunk is `rawLength` bytes and
    /// `compressedLength` as zstd frames, is stored compressed.
    static func storesCompressed(_ choice: CompressionChoice, rawLength: Int, compressedLength: Int,
                                 tensorLength: Int, autoBudgetLeft: Int) -> Bool {
        switch choice {
        case .always: return true
        case .never: return false
        case .auto:
            return Double(compressedLength) <= (1 - CompressionChoice.autoMinimumSaving) * Double(rawLength)
                && tensorLength <= autoBudgetLeft
        }
    }

    /// Fills `slot` with chunk `chunk` of a tensor: widen, check, quantize, (measure), compress.
    private static func process(slot: Slot, layout: Layout, chunk: Int, compress: Bool, level: Int, measure: Bool) {
        let rows = layout.rowRange(chunk: chunk)
        let n = layout.rowLength
        slot.rawLength = rows.count * layout.outRowBytes
        slot.frameLengths.removeAll(keepingCapacity: true)
        slot.error = nil
        slot.errorSums = (0, 0)
        for (r, row) in rows.enumerated() {
            let src = layout.source.pointer + row * layout.inRowBytes
            let out = slot.raw.baseAddress! + r * layout.outRowBytes
            let bad: Int
            switch layout.decoder {
            case .copy(let ggmlType):
                precondition(layout.inRowBytes == layout.outRowBytes, "\(layout.name): copied rows must keep their size")
                guard gt_gguf_dequantize_row(ggmlType, src, n, slot.scratch) == 0 else {
                    slot.error = .output("internal error: cannot dequantize \(layout.name) (ggml type \(ggmlType))")
                    return
                }
                let nonFinite = gt_first_nonfinite(slot.scratch, n)
                guard nonFinite == n else {
                    slot.error = .nonFiniteWeight(tensor: layout.name, index: row * n + nonFinite)
                    return
                }
                out.copyMemory(from: src, byteCount: layout.outRowBytes)
                continue
            case .widen(let srcType):
                // Widen, check and quantize in one call (bf16 in one pass on AVX2).
                bad = gt_convert_row(srcType, src, n, layout.type, out, slot.scratch)
            case .gguf(let ggmlType, let subtract):
                guard gt_gguf_dequantize_row(ggmlType, src, n, slot.scratch) == 0 else {
                    slot.error = .output("internal error: cannot dequantize \(layout.name) (ggml type \(ggmlType))")
                    return
                }
                if subtract != 0 {
                    for i in 0..<n { slot.scratch[i] = slot.scratch[i] - subtract }
                }
                bad = gt_first_nonfinite(slot.scratch, n)
                if bad == n { gt_quantize_row(layout.type, slot.scratch, n, out) }
            }
            if bad < n {
                slot.error = .nonFiniteWeight(tensor: layout.name, index: row * n + bad)
                return
            }
            if measure, let dequantized = slot.dequantized {
                gt_dequantize_row(layout.type, out, n, dequantized)
                var (err, ref) = slot.errorSums
                gt_error_sums(slot.scratch, dequantized, n, &err, &ref)
                slot.errorSums = (err, ref)
            }
        }
        guard compress else { return }
        do {
            if slot.compressor == nil { slot.compressor = try ZstdFrames.Compressor(level: level) }
            var offset = 0
            for start in stride(from: 0, to: slot.rawLength, by: ZstdFrames.frameSize) {
                let end = min(start + ZstdFrames.frameSize, slot.rawLength)
                let length = try slot.compressor!.compressFrame(UnsafeRawBufferPointer(rebasing: slot.raw[start..<end]),
                                                                into: UnsafeMutableRawBufferPointer(rebasing: slot.stored[offset...]))
                slot.frameLengths.append(length)
                offset += length
            }
        } catch {
            slot.error = .output("zstd compression of \(layout.name) failed: \(error)")
        }
    }
}

/// A read-only pointer into a mapping that outlives the workers using it.
struct SendablePointer: @unchecked Sendable {
    let pointer: UnsafeRawPointer
    init(_ pointer: UnsafeRawPointer) { self.pointer = pointer }
}
