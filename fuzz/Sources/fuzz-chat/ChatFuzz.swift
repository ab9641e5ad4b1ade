// Fuzz target: Gemma's chat template and special-token parsing, with the tiny fixture
// model's tokenizer.
//
// Input: messages separated by 0xFF bytes (never part of UTF-8); each message's first byte
// picks its role (mod 3: system, user, assistant), the rest is its text (String(decoding:)).
// Checked: GemmaChatTemplate.tokens gives ids in range whose only control ids are <bos>,
// <start_of_turn> and <end_of_turn>, exactly one <start_of_turn> per turn plus the final model
// header, so message text can never forge a turn; when no message text contains a control
// token's text, encoding render(...) with special-token parsing gives the same ids. The whole
// input as text is also encoded with special-token parsing.
import FuzzSupport
import GemmaTiny

let tokenizer = FuzzSupport.fixtureTokenizer()
let sot = tokenizer.id(of: "<start_of_turn>")!
let eot = tokenizer.id(of: "<end_of_turn>")!
let specialTexts = tokenizer.specialTokens.keys.map { Array($0.utf8) }

/// Byte-level search (String.contains compares characters, and a combining mark after `>`
/// would hide a match that the byte-level special-token matcher still sees).
func containsBytes(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return needle.isEmpty }
    for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
        if haystack[i..<i + needle.count].elementsEqual(needle) { return true }
    }
    return false
}

@main enum Main {
    static func main() { FuzzSupport.runLibFuzzer(fuzzChat) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzChat(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let whole = tokenizer.encode(String(decoding: input, as: UTF8.self), parseSpecialTokens: true)
    for id in whole { FuzzSupport.check(id >= 0 && id < tokenizer.vocabularySize, "id \(id) outside the vocabulary") }

    var messages: [ChatMessage] = []
    for part in input.split(separator: 0xFF, omittingEmptySubsequences: false) where !part.isEmpty {
        let role: ChatRole = [.system, .user, .assistant][Int(part.first!) % 3]
        messages.append(ChatMessage(role: role, content: String(decoding: part.dropFirst(), as: UTF8.self)))
    }
    guard let ids = try? GemmaChatTemplate.tokens(for: messages, tokenizer: tokenizer),
          let rendered = try? GemmaChatTemplate.render(messages) else {
        FuzzSupport.check(messages.isEmpty, "the template refused \(messages.count) messages")
        return 0
    }
    for id in ids {
        FuzzSupport.check(id >= 0 && id < tokenizer.vocabularySize, "id \(id) outside the vocabulary")
        FuzzSupport.check(!tokenizer.isControl(id) || id == sot || id == eot || id == tokenizer.bosId,
                          "message text produced control id \(id)")
    }
    // Turns after folding system messages into the next user message.
    var turns: [Bool] = []  // isUser
    var pendingSystem = false
    for m in messages {
        switch m.role {
        case .system: pendingSystem = true
        case .user: turns.append(true); pendingSystem = false
        case .assistant: turns.append(false)
        }
    }
    if pendingSystem { turns.append(true) }
    let lastIsUser = turns.last!
    FuzzSupport.check(ids.first == tokenizer.bosId, "the prompt does not start with <bos>")
    FuzzSupport.check(ids.count(where: { $0 == sot }) == turns.count + (lastIsUser ? 1 : 0), "wrong <start_of_turn> count")
    FuzzSupport.check(ids.count(where: { $0 == eot }) == turns.count - (lastIsUser ? 0 : 1), "wrong <end_of_turn> count")
    if !messages.contains(where: { m in specialTexts.contains { containsBytes(Array(m.content.utf8), $0) } }) {
        let reparsed = tokenizer.encode(rendered, parseSpecialTokens: true)
        FuzzSupport.check(reparsed == ids, "render + special-token parsing differs from tokens(for:): \(reparsed) vs \(ids)")
    }
    return 0
}
