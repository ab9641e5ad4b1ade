import Foundation
import GemmaKernels
@testable import GemmaTiny
import XCTest

/// Storage type names, raw values and sizes: what the metadata, the CLI and the tensor table
/// rely on (the K types are ggml's Q4_K / Q6_K super-blocks).
final class StorageTypeTests: XCTestCase {
    func testNamesRoundTripAndRawValuesMatchTheKernels() throws {
        let expected: [(StorageType, String, Int)] = [
            (.f32, "f32", GT_F32), (.bf16, "bf16", GT_BF16), (.q8, "q8", GT_Q8), (.q4, "q4", GT_Q4),
            (.q5, "q5", GT_Q5), (.q4k, "q4k", GT_Q4K), (.q6k, "q6k", GT_Q6K),
        ]
        XCTAssertEqual(StorageType.allCases.count, Int(GT_TYPE_COUNT))
        for (type, name, raw) in expected {
            XCTAssertEqual(type.description, name)
            XCTAssertEqual(StorageType(name: name), type)
            XCTAssertEqual(StorageType(name: name.uppercased()), type)
            XCTAssertEqual(Int(type.rawValue), raw, name)
            let json = try JSONEncoder().encode([type])
            XCTAssertEqual(String(decoding: json, as: UTF8.self), "[\"\(name)\"]")
            XCTAssertEqual(try JSONDecoder().decode([StorageType].self, from: json), [type])
        }
        XCTAssertNil(StorageType(name: "q4_k"))
        XCTAssertNil(StorageType(rawValue: UInt8(GT_TYPE_COUNT)))
        XCTAssertThrowsError(try JSONDecoder().decode([StorageType].self, from: Data("[\"q3k\"]".utf8)))
    }

    func testKTypeSizes() {
        XCTAssertEqual(StorageType.q4k.blockSize, 256)
        XCTAssertEqual(StorageType.q6k.blockSize, 256)
        XCTAssertEqual(StorageType.q4k.bitsPerWeight, 4.5)
        XCTAssertEqual(StorageType.q6k.bitsPerWeight, 6.5625)
        XCTAssertTrue(StorageType.q4k.isQuantized && StorageType.q4k.isKQuant)
        XCTAssertTrue(StorageType.q6k.isQuantized && StorageType.q6k.isKQuant)
        XCTAssertFalse(StorageType.q4.isKQuant || StorageType.q5.isKQuant || StorageType.bf16.isQuantized)
        XCTAssertEqual(StorageType.q4k.rowBytes(2048), 8 * 144)
        XCTAssertEqual(StorageType.q6k.rowBytes(2048), 8 * 210)
        XCTAssertEqual(StorageType.q4k.rowBytes(256), 144)
        XCTAssertEqual(StorageType.q6k.rowBytes(0), 0)
        // Rows are whole super-blocks: Gemma 3 270M's hidden 640 is not.
        for n in [32, 640, 1152, 255, 257] {
            XCTAssertNil(StorageType.q4k.rowBytes(n), "\(n)")
            XCTAssertNil(StorageType.q6k.rowBytes(n), "\(n)")
        }
        for type in StorageType.allCases where type.isQuantized {
            XCTAssertEqual(type.rowBytes(type.blockSize), type.blockBytes, "\(type)")
            XCTAssertEqual(Double(type.blockBytes * 8) / Double(type.blockSize), type.bitsPerWeight, "\(type)")
        }
    }
}
