// Fuzz target: structured output (docs/STRUCTURED-OUTPUT.md). The schema comes from HTTP
// clients, so it is untrusted input.
//
// Input: a JSON Schema, a 0xFF byte, then reply bytes (no 0xFF: the schema part is the whole
// input; an empty schema part means json_object). Checked: compiling never crashes; stepping the
// reply's bytes never crashes; a reply the grammar accepts as complete is JSON that Foundation
// reads (json_object: an object); at the end, the allowed set from the token index walk equals
// trying every token of the fixture vocabulary, and is never empty while the json_object reply
// is unfinished (no dead ends).
import Foundation
import FuzzSupport
@testable import GemmaTiny

let tokenizer = FuzzSupport.fixtureTokenizer()
let index = TokenByteIndex(tokenizer: tokenizer)

@main enum Main {
    static func main() { FuzzSupport.runLibFuzzer(fuzzSchema) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSchema(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let split = input.firstIndex(of: 0xFF) ?? input.endIndex
    let schemaText = String(decoding: input[..<split], as: UTF8.self)
    let reply = split < input.endIndex ? Array(input[(split + 1)...]) : []
    let grammar: JSONGrammar
    if schemaText.isEmpty {
        grammar = .jsonObject
    } else {
        guard let compiled = try? JSONSchemaCompiler.compile(schema: schemaText) else { return 0 }
        grammar = compiled
    }
    var constraint = JSONConstraint(grammar: grammar, index: index)
    let stepper = JSONStepper(grammar: grammar)
    var states = constraint.states
    for c in reply {
        var next: [JSONParseState] = []
        for s in states { stepper.advance(s, c, into: &next) }
        if next.count > JSONConstraint.maxStates { next.removeLast(next.count - JSONConstraint.maxStates) }
        states = next
        if states.isEmpty { break }
    }
    if !states.isEmpty && states.contains(where: \.canEnd) {
        let parsed = try? JSONSerialization.jsonObject(with: Data(reply), options: .fragmentsAllowed)
        FuzzSupport.check(parsed != nil, "the grammar accepted \(String(decoding: reply, as: UTF8.self).debugDescription), Foundation does not")
        if schemaText.isEmpty {
            FuzzSupport.check(parsed is [String: Any], "json_object accepted a non-object")
        }
    }
    // The same reply through the token-level constraint, token by token as the tokenizer splits it.
    guard !states.isEmpty, let text = String(validating: reply, as: UTF8.self) else { return 0 }
    for token in tokenizer.encode(text) {
        FuzzSupport.check(constraint.allows(token), "token \(token) refused though its bytes were accepted")
        constraint.accept(token)
    }
    let fast = constraint.allowedTokens()
    let slow = (0..<tokenizer.vocabularySize).filter { constraint.allows($0) }
    FuzzSupport.check(fast == slow, "the index walk allows \(fast.count) tokens, one by one \(slow.count)")
    if schemaText.isEmpty {
        FuzzSupport.check(!fast.isEmpty, "no token can continue \(text.debugDescription)")
    }
    return 0
}
