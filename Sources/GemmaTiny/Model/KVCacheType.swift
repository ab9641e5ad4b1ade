/// How the KV cache stores keys and values (`--cache-type`, as llama.cpp's `-ctk` / `-ctv`, one
/// setting for both).
///
/// - `f32`: as the forward pass computes them (4 bytes an element).
/// - `f16`: IEEE halves (2 bytes an element: half the memory, and half the bytes decoding reads
///   at depth), rounded to nearest even as they are stored; a key or value beyond +-65504
///   saturates to +-65504 (`gt_f16_store`). Attention widens them back to f32 exactly, so the
///   only difference is that rounding (about 3 significant decimal digits per element).
///
/// What serves users defaults to f16 (``default``), as llama.cpp does: the command line (`run`,
/// `chat`, `perplexity`, `bench`, `serve`), `GemmaEngine.Options` (and so the server and the C
/// library) and `MemoryEstimate.Session`. Perplexity of the real Gemma 3 270M (q4_k_m) is
/// 13.8645 with it against 13.8623 with f32 (+0.016%), and decoding at depth 2048 is 1.13-1.26x
/// faster. The exact forward pass, `InferenceSession` (and `Generator`, which wraps one), keeps
/// f32 as its default: it is what the parity tests against transformers compare.
public enum KVCacheType: String, Sendable, CaseIterable, CustomStringConvertible {
    case f32
    case f16

    /// The default of what serves users (see above); `InferenceSession` defaults to `.f32`.
    public static let `default` = KVCacheType.f16

    /// Bytes per cached element.
    public var bytesPerElement: Int {
        switch self {
        case .f32: 4
        case .f16: 2
        }
    }

    public var description: String { rawValue }
}
