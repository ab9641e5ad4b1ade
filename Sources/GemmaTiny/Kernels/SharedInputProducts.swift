/// Up to three matrix products that take the same input: a layer's query, key and value
/// projections, or its MLP's gate and up projections. Stored inline (no allocation per call).
public struct SharedInputProducts {
    public static let capacity = 3
    public typealias Product = (weights: WeightMatrix, output: UnsafeMutablePointer<Float>)

    private let first: Product
    private let second: Product?
    private let third: Product?

    /// Each output gets `count` rows of `weights.rows` floats (output row stride = weights.rows).
    /// All matrices must have the same number of columns (the input's length).
    public init(_ first: Product, _ second: Product? = nil, _ third: Product? = nil) {
        precondition(second.map { $0.weights.cols == first.weights.cols } ?? true
                         && third.map { $0.weights.cols == first.weights.cols } ?? true,
                     "products that share an input need the same number of columns")
        self.first = first
        self.second = second
        self.third = third
    }

    public var count: Int { second == nil ? 1 : third == nil ? 2 : 3 }
    public var cols: Int { first.weights.cols }

    public subscript(i: Int) -> Product {
        switch i {
        case 0: return first
        case 1: return second!
        default: return third!
        }
    }
}

extension MatmulKernels {
    /// The products one after the other, as separate `matvec` / `matmul` calls.
    public func matmul(_ products: SharedInputProducts, _ x: UnsafePointer<Float>, count: Int) {
        for i in 0..<products.count {
            let (w, y) = products[i]
            if count == 1 {
                matvec(w, x, y)
            } else {
                matmul(w, x, xStride: w.cols, y, yStride: w.rows, count: count)
            }
        }
    }
}
