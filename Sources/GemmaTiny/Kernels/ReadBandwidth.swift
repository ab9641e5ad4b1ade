import GemmaKernels

/// The memory read bandwidth in GB/s (1e9 bytes/s) that `threads` threads summing a fresh
/// `bytes`-byte buffer reach, best of `repetitions` passes: the yardstick for decoding, which
/// reads every weight once per token. Nil if the buffer cannot be allocated.
public func measureReadBandwidth(bytes: Int = 1 << 30, threads: Int, repetitions: Int = 5) -> Double? {
    let gbps = gt_read_bandwidth(bytes, Int32(threads), Int32(repetitions))
    return gbps > 0 ? gbps : nil
}
