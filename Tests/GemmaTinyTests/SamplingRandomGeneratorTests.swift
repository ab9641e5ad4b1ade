import XCTest
@testable import GemmaTiny

final class SamplingRandomGeneratorTests: XCTestCase {
    func testSplitMix64MatchesReferenceOutputs() {
        var zero = SplitMix64(seed: 0)
        XCTAssertEqual([zero.next(), zero.next(), zero.next()],
                       [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
        var other = SplitMix64(seed: 1_234_567)
        XCTAssertEqual((0..<5).map { _ in other.next() },
                       [6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423,
                        4_593_380_528_125_082_431, 16_408_922_859_458_223_821])
    }

    func testXoshiroMatchesReferenceOutputsFromState1234() {
        // The reference implementation's outputs for state {1, 2, 3, 4}.
        var rng = Xoshiro256StarStar(state: (1, 2, 3, 4))
        let expected: [UInt64] = [
            11520, 0, 1_509_978_240, 1_215_971_899_390_074_240, 1_216_172_134_540_287_360,
            607_988_272_756_665_600, 16_172_922_978_634_559_625, 8_476_171_486_693_032_832,
            10_595_114_339_597_558_777, 2_904_607_092_377_533_576,
        ]
        XCTAssertEqual((0..<expected.count).map { _ in rng.next() }, expected)
    }

    func testSeedingExpandsThroughSplitMix() {
        var mixer = SplitMix64(seed: 42)
        let state = (mixer.next(), mixer.next(), mixer.next(), mixer.next())
        var seeded = Xoshiro256StarStar(seed: 42)
        var manual = Xoshiro256StarStar(state: state)
        for _ in 0..<100 { XCTAssertEqual(seeded.next(), manual.next()) }
        // Independent implementations agree on seed 42 through SplitMix64.
        var again = Xoshiro256StarStar(seed: 42)
        XCTAssertEqual((0..<4).map { _ in again.next() },
                       [1_546_998_764_402_558_742, 6_990_951_692_964_543_102,
                        12_544_586_762_248_559_009, 17_057_574_109_182_124_193])
    }

    func testAllZeroStateIsReplaced() {
        var rng = Xoshiro256StarStar(state: (0, 0, 0, 0))
        let outputs = (0..<8).map { _ in rng.next() }
        XCTAssertNotEqual(outputs, Array(repeating: 0, count: 8))
    }

    func testUnitDoubleIsInRangeAndUniform() {
        var rng = Xoshiro256StarStar(seed: 7)
        var sum = 0.0
        var buckets = [Int](repeating: 0, count: 10)
        let n = 100_000
        for _ in 0..<n {
            let u = rng.nextUnitDouble()
            XCTAssertTrue(u >= 0 && u < 1)
            sum += u
            buckets[Int(u * 10)] += 1
        }
        XCTAssertEqual(sum / Double(n), 0.5, accuracy: 0.01)
        for count in buckets { XCTAssertEqual(Double(count) / Double(n), 0.1, accuracy: 0.01) }
    }

    func testWorksWithStandardLibraryRandomAPIs() {
        var a = Xoshiro256StarStar(seed: 3)
        var b = Xoshiro256StarStar(seed: 3)
        let x = (0..<20).map { _ in Int.random(in: 0..<1000, using: &a) }
        let y = (0..<20).map { _ in Int.random(in: 0..<1000, using: &b) }
        XCTAssertEqual(x, y)
    }
}
