// Fuzz target: the converter's safetensors reader (8-byte header length, JSON header, tensor
// table checked against the file). Each input is written to a scratch file in /dev/shm.
import Foundation
import FuzzSupport
@testable import GemmaConvert

@main enum Main {
    static func main() { FuzzSupport.runLibFuzzer(fuzzSafetensors) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    let path = FuzzSupport.scratchFile(UnsafeRawBufferPointer(start: data, count: size), name: "model.safetensors")
    guard let file = try? SafetensorsFile(path: path) else { return 0 }
    var sum = 0
    for t in file.tensors.values {
        FuzzSupport.check(t.range.lowerBound >= 8 && t.range.upperBound <= size, "tensor \(t.name) range \(t.range) outside the \(size)-byte file")
        FuzzSupport.check(t.range.count == t.elementCount * t.dtype.size, "tensor \(t.name) byte count disagrees with its shape")
        let b = file.bytes(t)
        if let first = b.first, let last = b.last { sum &+= Int(first) &+ Int(last) }
    }
    return sum == -1 ? 1 : 0
}
