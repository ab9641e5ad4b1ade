/// How the KV cache stores keys and values (`--cache-type`, as llama.cpp's `-ctk` / `-ctv`, one
/// setting for both).
///
/// - `f32`: as the forward pass computes them (4 bytes an element).
/// - `f16`: IEEE halves (2 bytes an element: half the memory, and half the bytes decoding reads
///   at depth), rounded to nearest even as they are stored; a key or value beyond +-65504
///   saturates to +-65504 (`gt_f16_store`). Attention widens them back to f32 exactly, so the
///   only difference is that rounding (about 3 significant decimal digits per element).
public enum KVCacheType: String, Sendable, CaseIterable, CustomStringConvertible {
    case f32
    case f16

    public static let `default` = KVCacheType.f32

    /// Bytes per cached element.
    public var bytesPerElement: Int {
        switch self {
        case .f32: 4
        case .f16: 2
        }
    }

    public var description: String { rawValue }
}
