import Foundation
import GemmaKernels

/// XXH64 of every file in `folder`, by name: compared before and after a failed conversion to
/// show that the input was not touched.
func folderChecksums(_ folder: String) throws -> [String: UInt64] {
    var result: [String: UInt64] = [:]
    for name in try FileManager.default.contentsOfDirectory(atPath: folder) {
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/" + name))
        result[name] = data.withUnsafeBytes { gt_xxh64($0.baseAddress, $0.count, 0) }
    }
    return result
}
