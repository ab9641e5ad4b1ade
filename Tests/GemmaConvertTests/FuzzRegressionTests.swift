import Foundation
@testable import GemmaConvert
import XCTest

/// Inputs found by the libFuzzer targets in fuzz/ (docs/RELIABILITY.md) that crashed a reader.
/// Each is fed to the reader that crashed; it must now give a one-line error.
final class FuzzRegressionTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gt-fuzzreg-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func write(_ base64: String, _ name: String) throws -> String {
        let path = dir + "/" + name
        try XCTUnwrap(Data(base64Encoded: base64)).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// fuzz-safetensors: shape [2^40, 2^21] of F32. The element count (2^61) fits in an Int, the
    /// byte count (2^63) does not: `count * dtype.size` trapped on overflow
    /// (converter/GemmaConvert/SafetensorsFile.swift). Header:
    /// {"t": {"dtype": "F32", "shape": [1099511627776, 2097152], "data_offsets": [0, 0]}}
    func testSafetensorsByteCountOverflow() throws {
        let path = try write("UgAAAAAAAAB7InQiOiB7ImR0eXBlIjogIkYzMiIsICJzaGFwZSI6IFsxMDk5NTExNjI3Nzc2LCAyMDk3MTUyXSwgImRhdGFfb2Zmc2V0cyI6IFswLCAwXX19",
                             "overflow.safetensors")
        XCTAssertThrowsError(try SafetensorsFile(path: path)) { error in
            guard case .invalidSafetensors(_, let reason) = error as? ConversionError else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertTrue(reason.contains("overflows"), reason)
        }
    }
}
