/// UTF-8 decoding exactly as SentencePiece's string_util::DecodeUTF8 does it when decoding a
/// run of byte pieces: each invalid byte becomes one U+FFFD and decoding resumes at the next
/// byte (so "E3 81 41" gives two U+FFFD then "A", where Swift's decoder would give one).
enum SentencePieceUTF8 {
    static let replacement: [UInt8] = [0xEF, 0xBF, 0xBD]

    /// Length of the valid character at the start of `bytes[from...]`, or nil when invalid.
    static func validLength(_ bytes: [UInt8], from i: Int) -> Int? {
        let n = bytes.count - i
        let b0 = UInt32(bytes[i])
        if b0 < 0x80 { return 1 }
        let need = sequenceLength(leadByte: bytes[i])
        guard need > 1, n >= need else { return nil }
        var cp = b0 & (need == 2 ? 0x1F : need == 3 ? 0x0F : 0x07)
        for k in 1..<need {
            let b = bytes[i + k]
            guard b & 0xC0 == 0x80 else { return nil }
            cp = cp << 6 | UInt32(b & 0x3F)
        }
        return isAllowed(cp, length: need) ? need : nil
    }

    /// True when `bytes[from...]` is too short for the character its lead byte announces, yet
    /// some continuation would make it valid: a streaming decoder must wait for more bytes.
    static func couldComplete(_ bytes: [UInt8], from i: Int) -> Bool {
        let n = bytes.count - i
        let need = sequenceLength(leadByte: bytes[i])
        guard need > 1, n < need else { return false }
        var cp = UInt32(bytes[i]) & (need == 2 ? 0x1F : need == 3 ? 0x0F : 0x07)
        for k in 1..<n {
            let b = bytes[i + k]
            guard b & 0xC0 == 0x80 else { return false }
            cp = cp << 6 | UInt32(b & 0x3F)
        }
        // The missing bytes add 6 bits each: the possible code points form one aligned range.
        // For UTF-8's ranges, checking both ends is enough to know whether any of it is valid.
        let missing = UInt32(6 * (need - n))
        let low = cp << missing
        let high = low | ((1 << missing) - 1)
        return isAllowed(low, length: need) || isAllowed(high, length: need)
    }

    /// 2, 3 or 4 for a lead byte, else 0 (continuation bytes and F8...FF).
    private static func sequenceLength(leadByte b: UInt8) -> Int {
        switch b {
        case 0xC0...0xDF: return 2
        case 0xE0...0xEF: return 3
        case 0xF0...0xF7: return 4
        default: return 0
        }
    }

    /// Not overlong, not a surrogate, at most U+10FFFF.
    private static func isAllowed(_ cp: UInt32, length: Int) -> Bool {
        let minimum: UInt32 = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000
        return cp >= minimum && (cp < 0xD800 || (cp >= 0xE000 && cp <= 0x10FFFF))
    }

    /// Decodes a byte run; when `final` is false, stops before an incomplete character that
    /// may still complete. Returns the text bytes and how many input bytes were used.
    static func decodeRun(_ bytes: [UInt8], final: Bool, into out: inout [UInt8]) -> Int {
        var i = 0
        while i < bytes.count {
            if let len = validLength(bytes, from: i) {
                out.append(contentsOf: bytes[i..<(i + len)])
                i += len
            } else if !final && couldComplete(bytes, from: i) {
                break
            } else {
                out.append(contentsOf: replacement)
                i += 1
            }
        }
        return i
    }
}
