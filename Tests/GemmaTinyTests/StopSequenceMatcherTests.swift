import XCTest
@testable import GemmaTiny

final class StopSequenceMatcherTests: XCTestCase {
    /// Feeds `pieces` in order; returns everything emitted (plus flush if no stop) and whether it stopped.
    private func run(_ stops: [String], _ pieces: [String]) -> (text: String, stopped: Bool, emits: [String]) {
        var matcher = StopSequenceMatcher(stopSequences: stops)
        var emits: [String] = []
        for piece in pieces {
            let (emit, stopped) = matcher.feed(piece)
            emits.append(emit)
            if stopped { return (emits.joined(), true, emits) }
        }
        emits.append(matcher.flush())
        return (emits.joined(), false, emits)
    }

    func testEmptyListEmitsEverythingImmediately() {
        var matcher = StopSequenceMatcher(stopSequences: [])
        for piece in ["Hello", " <", "end>", "🙂"] {
            let (emit, stopped) = matcher.feed(piece)
            XCTAssertEqual(emit, piece)
            XCTAssertFalse(stopped)
        }
        XCTAssertEqual(matcher.flush(), "")
    }

    func testEmptyStopStringsAreIgnored() {
        let r = run(["", "x"], ["ab", "cxd"])
        XCTAssertEqual(r.text, "abc")
        XCTAssertTrue(r.stopped)
        XCTAssertEqual(run([""], ["abc"]).emits, ["abc", ""])
    }

    func testSingleTokenStop() {
        var matcher = StopSequenceMatcher(stopSequences: ["<end>"])
        XCTAssertEqual(matcher.feed("Hello").emit, "Hello")
        let (emit, stopped) = matcher.feed("<end>")
        XCTAssertEqual(emit, "")
        XCTAssertTrue(stopped)
        XCTAssertEqual(matcher.matchedStopSequence, "<end>")
        XCTAssertTrue(matcher.isStopped)

        // Text before the stop in the same piece is emitted; what follows it is not.
        var other = StopSequenceMatcher(stopSequences: ["<end>"])
        XCTAssertTrue(other.feed("abc<end>xyz") == ("abc", true))
        XCTAssertEqual(other.flush(), "")
    }

    func testStopSpanningThreeFeeds() {
        var matcher = StopSequenceMatcher(stopSequences: ["</answer>"])
        XCTAssertTrue(matcher.feed("The answer</") == ("The answer", false))
        XCTAssertTrue(matcher.feed("answ") == ("", false))
        XCTAssertTrue(matcher.feed("er> trailing") == ("", true))
        XCTAssertEqual(matcher.flush(), "")
    }

    func testPartialPrefixThatIsNotAStopIsEmittedLaterIntact() {
        var matcher = StopSequenceMatcher(stopSequences: ["STOP"])
        XCTAssertTrue(matcher.feed("go ST") == ("go ", false))
        XCTAssertTrue(matcher.feed("O") == ("", false))
        XCTAssertTrue(matcher.feed("NE wall") == ("STONE wall", false))
        XCTAssertTrue(matcher.feed("S") == ("", false))
        XCTAssertTrue(matcher.feed("S") == ("S", false))  // the first S can no longer start STOP
        XCTAssertEqual(matcher.flush(), "S")
    }

    func testHoldsBackOnlyThePossibleStart() {
        var matcher = StopSequenceMatcher(stopSequences: ["abc"])
        XCTAssertTrue(matcher.feed("xxab") == ("xx", false))
        XCTAssertTrue(matcher.feed("ab") == ("ab", false))  // "abab": only the second "ab" can start a stop
        XCTAssertEqual(matcher.flush(), "ab")
    }

    func testOverlappingPrefixes() {
        // After "aaa" the stop "aab" can only start at the second 'a'.
        let r = run(["aab"], ["a", "a", "a", "b"])
        XCTAssertEqual(r.text, "a")
        XCTAssertTrue(r.stopped)
        // Two stops sharing bytes: the first one to complete wins, however the text is split.
        XCTAssertEqual(run(["abcd", "bce"], ["abc", "e"]).text, "a")
        XCTAssertEqual(run(["abcd", "bc"], ["abcd"]).text, "a")
        XCTAssertEqual(run(["abcd", "bc"], ["a", "b", "c", "d"]).text, "a")
        // Both complete on the same byte: the longer (earlier) one.
        var matcher = StopSequenceMatcher(stopSequences: ["cd", "abcd"])
        XCTAssertTrue(matcher.feed("xabcd") == ("x", true))
        XCTAssertEqual(matcher.matchedStopSequence, "abcd")
    }

    func testTwoStopStrings() {
        var matcher = StopSequenceMatcher(stopSequences: ["\n\n", "User:"])
        XCTAssertTrue(matcher.feed("Hi\n") == ("Hi", false))
        XCTAssertTrue(matcher.feed("Use") == ("\n", false))
        XCTAssertTrue(matcher.feed("r: hello") == ("", true))
        XCTAssertEqual(matcher.matchedStopSequence, "User:")

        let r = run(["\n\n", "User:"], ["a\n", "\nUser:"])
        XCTAssertEqual(r.text, "a")
        XCTAssertTrue(r.stopped)
    }

    func testStopAtTheVeryStart() {
        XCTAssertEqual(run(["<end>"], ["<end>rest"]).emits, [""])
        let split = run(["<end>"], ["<e", "nd>"])
        XCTAssertEqual(split.emits, ["", ""])
        XCTAssertTrue(split.stopped)
    }

    func testFeedAfterStopIsIgnored() {
        var matcher = StopSequenceMatcher(stopSequences: ["x"])
        XCTAssertTrue(matcher.feed("ax") == ("a", true))
        XCTAssertTrue(matcher.feed("more") == ("", true))
        XCTAssertEqual(matcher.flush(), "")
    }

    func testFlushReturnsHeldText() {
        var matcher = StopSequenceMatcher(stopSequences: ["<end>"])
        XCTAssertTrue(matcher.feed("abc<en") == ("abc", false))
        XCTAssertEqual(matcher.flush(), "<en")
        XCTAssertEqual(matcher.flush(), "")
        XCTAssertTrue(matcher.feed("d>") == ("d>", false))  // the held "<en" is gone
    }

    func testMultiByteCharactersSplitAcrossFeeds() {
        // CJK stop split across feeds, with CJK text before it.
        let cjk = run(["停止"], ["你好停", "止了"])
        XCTAssertEqual(cjk.emits, ["你好", ""])
        XCTAssertTrue(cjk.stopped)

        // An emoji stop sequence.
        XCTAssertEqual(run(["🛑"], ["ok ", "🛑 no"]).text, "ok ")

        // A ZWJ family emoji fed one scalar at a time, with a stop that shares its start but never completes.
        let family = "👨‍👩‍👧"
        let scalars = family.unicodeScalars.map { String($0) }
        let r = run(["👩‍👧!"], ["a"] + scalars + ["b"])
        XCTAssertFalse(r.stopped)
        XCTAssertEqual(r.text, "a" + family + "b")

        // The same emoji split between a skin tone modifier and its base.
        let thumbs = run(["🏽x"], ["👍", "🏽", "!"])
        XCTAssertEqual(thumbs.text, "👍🏽!")
    }

    func testStopStartingInsideAGraphemeClusterIsFound() {
        // "e" + combining acute is one Character; the stop starts at the accent.
        let r = run(["\u{301}!"], ["cafe", "\u{301}", "! more"])
        XCTAssertTrue(r.stopped)
        XCTAssertEqual(r.text.unicodeScalars.map(\.value), "cafe".unicodeScalars.map(\.value))
    }

    func testByteFeedsFindStopsSplitInsideAScalar() {
        var matcher = StopSequenceMatcher(stopSequences: ["🛑"])
        var emitted: [UInt8] = []
        var stopped = false
        for byte in Array("go 🛑 rest".utf8) where !stopped {
            let r = matcher.feed(utf8: [byte])
            emitted += r.emit
            stopped = r.stopped
        }
        XCTAssertTrue(stopped)
        XCTAssertEqual(String(decoding: emitted, as: UTF8.self), "go ")

        // Without a stop, the bytes come back unchanged.
        var plain = StopSequenceMatcher(stopSequences: ["🛑"])
        var out: [UInt8] = []
        for byte in Array("a🙂b🛐".utf8) { out += plain.feed(utf8: [byte]).emit }
        out += plain.flushUTF8()
        XCTAssertEqual(out, Array("a🙂b🛐".utf8))
    }

    func testConcatenationEqualsInputWhenNoStopOccurs() {
        let text = "Some <en text with </s near-misses: <end, </, \n\nUse and 你好 🙂 and <e<en<end!"
        let stops = ["<end>", "</s>", "\n\nUser"]
        var rng = Xoshiro256StarStar(seed: 1)
        let scalars = Array(text.unicodeScalars)
        for _ in 0..<200 {
            var pieces: [String] = []
            var i = 0
            while i < scalars.count {
                let n = Int.random(in: 1...4, using: &rng)
                var piece = String.UnicodeScalarView()
                piece.append(contentsOf: scalars[i..<min(i + n, scalars.count)])
                pieces.append(String(piece))
                i += n
            }
            let r = run(stops, pieces)
            XCTAssertFalse(r.stopped)
            XCTAssertEqual(r.text, text)
        }
    }

    /// Against a brute-force reference: output = text before the first stop sequence to complete.
    func testRandomSplitsAgreeWithReference() {
        let alphabet: [Character] = ["a", "b", "c", "é"]
        let stops = ["ab", "bca", "cc", "éé", "abcab"]
        var rng = Xoshiro256StarStar(seed: 2)
        for _ in 0..<500 {
            let text = String((0..<Int.random(in: 0...14, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            var expected = text
            var expectedStop = false
            let bytes = Array(text.utf8)
            search: for end in stride(from: 1, through: bytes.count, by: 1) {
                for stop in stops.sorted(by: { $0.utf8.count > $1.utf8.count }) {
                    let s = Array(stop.utf8)
                    if s.count <= end && Array(bytes[(end - s.count)..<end]) == s {
                        expected = String(decoding: bytes[..<(end - s.count)], as: UTF8.self)
                        expectedStop = true
                        break search
                    }
                }
            }
            let characters = Array(text)
            var pieces: [String] = []
            var i = 0
            while i < characters.count {
                let n = Int.random(in: 1...3, using: &rng)
                pieces.append(String(characters[i..<min(i + n, characters.count)]))
                i += n
            }
            let r = run(stops, pieces)
            XCTAssertEqual(r.text, expected, "text \(text) pieces \(pieces)")
            XCTAssertEqual(r.stopped, expectedStop, "text \(text) pieces \(pieces)")
        }
    }
}
