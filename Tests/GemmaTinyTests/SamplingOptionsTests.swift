import Foundation
import XCTest
@testable import GemmaTiny

final class SamplingOptionsTests: XCTestCase {
    func testDefaultsFollowLlamaCpp() {
        let o = SamplingOptions()
        XCTAssertEqual(o.temperature, 0.8)
        XCTAssertEqual(o.topK, 40)
        XCTAssertEqual(o.topP, 0.95)
        XCTAssertEqual(o.minP, 0.05)
        XCTAssertEqual(o.repetitionPenalty, 1.0)
        XCTAssertEqual(o.repetitionWindow, 64)
        XCTAssertNil(o.seed)
        XCTAssertEqual(SamplingOptions.greedy.temperature, 0)
        XCTAssertNoThrow(try o.validate())
        XCTAssertNoThrow(try SamplingOptions.greedy.validate())
    }

    func testValidateAcceptsBoundaryValues() {
        let ok = [
            SamplingOptions(temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, repetitionWindow: 0),
            SamplingOptions(temperature: 100, topK: 1, topP: 0.0001, minP: 1, repetitionPenalty: 0.5, repetitionWindow: 1_000_000),
        ]
        for o in ok { XCTAssertNoThrow(try o.validate(), "\(o)") }
    }

    func testValidateRejectsEachInvalidOption() {
        func error(_ o: SamplingOptions) -> SamplingOptionsError? {
            do { try o.validate(); return nil } catch { return error }
        }
        XCTAssertEqual(error(SamplingOptions(temperature: -0.1)), .temperature(-0.1))
        XCTAssertEqual(error(SamplingOptions(temperature: .infinity)), .temperature(.infinity))
        XCTAssertEqual(error(SamplingOptions(topK: -1)), .topK(-1))
        XCTAssertEqual(error(SamplingOptions(topP: 0)), .topP(0))
        XCTAssertEqual(error(SamplingOptions(topP: 1.01)), .topP(1.01))
        XCTAssertEqual(error(SamplingOptions(minP: -0.01)), .minP(-0.01))
        XCTAssertEqual(error(SamplingOptions(minP: 1.5)), .minP(1.5))
        XCTAssertEqual(error(SamplingOptions(repetitionPenalty: 0)), .repetitionPenalty(0))
        XCTAssertEqual(error(SamplingOptions(repetitionPenalty: -1.1)), .repetitionPenalty(-1.1))
        XCTAssertEqual(error(SamplingOptions(repetitionWindow: -1)), .repetitionWindow(-1))
        // NaN fails every range check (NaN != NaN, so match the case instead of comparing).
        for o in [SamplingOptions(temperature: .nan), SamplingOptions(topP: .nan), SamplingOptions(minP: .nan),
                  SamplingOptions(repetitionPenalty: .nan)] {
            XCTAssertNotNil(error(o), "\(o)")
        }
        XCTAssertTrue(SamplingOptionsError.topP(2).description.contains("top-p"))
        XCTAssertTrue(SamplingOptionsError.temperature(-1).description.contains("-1"))
    }

    func testCodableRoundTripKeepsFullSeed() throws {
        let o = SamplingOptions(temperature: 0.7, topK: 0, topP: 0.9, minP: 0.1, repetitionPenalty: 1.1,
                                repetitionWindow: 128, seed: UInt64.max - 1)
        let decoded = try JSONDecoder().decode(SamplingOptions.self, from: JSONEncoder().encode(o))
        XCTAssertEqual(decoded, o)
    }

    func testDecodingFillsMissingKeysWithDefaults() throws {
        let json = Data(#"{"temperature": 0.2, "seed": 5}"#.utf8)
        let o = try JSONDecoder().decode(SamplingOptions.self, from: json)
        var expected = SamplingOptions(temperature: 0.2)
        expected.seed = 5
        XCTAssertEqual(o, expected)
        XCTAssertEqual(try JSONDecoder().decode(SamplingOptions.self, from: Data("{}".utf8)), SamplingOptions())
    }
}
