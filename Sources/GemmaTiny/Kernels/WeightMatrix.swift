import GemmaKernels

/// A read-only weight matrix in the kernels' layout: `rows` rows of `cols` weights each, every row
/// `rowBytes` bytes apart, stored as `type` (f32, bf16, or q8 / q4 / q5 / q4k / q6k blocks). The bytes belong to the
/// model file's mapping (or its in-memory copy), which outlives every matrix taken from it.
public struct WeightMatrix: @unchecked Sendable {
    public let name: String
    public let type: StorageType
    public let rows: Int
    public let cols: Int
    public let rowBytes: Int
    public let base: UnsafeRawPointer

    public init(name: String, type: StorageType, rows: Int, cols: Int, base: UnsafeRawPointer) {
        self.name = name
        self.type = type
        self.rows = rows
        self.cols = cols
        self.rowBytes = type.rowBytes(cols) ?? 0
        self.base = base
    }

    /// Start of row `r`.
    @inline(__always)
    public func row(_ r: Int) -> UnsafeRawPointer { base + r * rowBytes }

    /// Writes row `r` as f32 into `out` (`cols` floats).
    public func dequantizeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(r >= 0 && r < rows, "row \(r) out of range for \(name) (\(rows) rows)")
        gt_dequantize_row(Int32(type.rawValue), row(r), cols, out)
    }

    /// Bytes of the whole matrix.
    public var byteCount: Int { rows * rowBytes }
}
