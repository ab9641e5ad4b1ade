import Foundation

/// Checks that a finished reply of the OpenAI-style API is well-formed: the problems found
/// (empty when it is), and the generated text.
enum ReplyValidation {
    struct Result {
        var problems: [String] = []
        var text = ""
    }

    static let finishReasons: Set<String> = ["stop", "length"]

    /// A JSON reply (`"stream": false`).
    static func json(_ reply: TestServer.Reply, kind: LoadRequest.Kind, maxTokens: Int) -> Result {
        var r = Result()
        guard reply.status == 200 else { return Result(problems: ["status \(reply.status): \(reply.body)"]) }
        if reply.headers["content-type"] != "application/json" { r.problems.append("content-type \(reply.headers["content-type"] ?? "none")") }
        guard let json = (try? JSONSerialization.jsonObject(with: Data(reply.body.utf8))) as? [String: Any] else {
            return Result(problems: ["not a JSON object: \(reply.body)"])
        }
        let (object, prefix) = kind == .chat ? ("chat.completion", "chatcmpl-") : ("text_completion", "cmpl-")
        if json["object"] as? String != object { r.problems.append("object \(json["object"] ?? "none")") }
        if !((json["id"] as? String)?.hasPrefix(prefix) ?? false) { r.problems.append("id \(json["id"] ?? "none")") }
        if json["model"] as? String != "tiny-gemma" { r.problems.append("model \(json["model"] ?? "none")") }
        if json["created"] as? Int == nil { r.problems.append("no created") }
        guard let choices = json["choices"] as? [[String: Any]], choices.count == 1 else {
            return Result(problems: r.problems + ["choices \(json["choices"] ?? "none")"])
        }
        let choice = choices[0]
        if !finishReasons.contains(choice["finish_reason"] as? String ?? "") { r.problems.append("finish_reason \(choice["finish_reason"] ?? "none")") }
        if kind == .chat {
            let message = choice["message"] as? [String: Any]
            if message?["role"] as? String != "assistant" { r.problems.append("message role \(message?["role"] ?? "none")") }
            if let content = message?["content"] as? String { r.text = content } else { r.problems.append("no message content") }
        } else {
            if let text = choice["text"] as? String { r.text = text } else { r.problems.append("no text") }
        }
        r.problems += usageProblems(json["usage"], maxTokens: maxTokens)
        return r
    }

    /// A server-sent event stream (`"stream": true`): every event a `data:` line holding a
    /// chunk of one id, exactly one finish reason, `data: [DONE]` last.
    static func stream(_ reply: TestServer.Reply, kind: LoadRequest.Kind, maxTokens: Int) -> Result {
        var r = Result()
        guard reply.status == 200 else { return Result(problems: ["status \(reply.status): \(reply.body)"]) }
        if reply.headers["content-type"] != "text/event-stream" { r.problems.append("content-type \(reply.headers["content-type"] ?? "none")") }
        guard reply.body.hasSuffix("data: [DONE]\n\n") else { return Result(problems: ["does not end with data: [DONE]: \(reply.body.suffix(200))"]) }
        let blocks = reply.body.components(separatedBy: "\n\n").dropLast()  // after the last separator: ""
        let object = kind == .chat ? "chat.completion.chunk" : "text_completion"
        var ids = Set<String>()
        var finishes: [String] = []
        for (i, block) in blocks.enumerated() {
            guard block.hasPrefix("data: ") else {
                r.problems.append("event \(i) is not a data line: \(block)")
                continue
            }
            let payload = String(block.dropFirst(6))
            if i == blocks.count - 1 { continue }  // [DONE], checked above
            guard let chunk = (try? JSONSerialization.jsonObject(with: Data(payload.utf8))) as? [String: Any] else {
                r.problems.append("event \(i) is not a JSON object: \(payload)")
                continue
            }
            if let error = chunk["error"] { r.problems.append("error event: \(error)") }
            if chunk["object"] as? String != object { r.problems.append("event \(i) object \(chunk["object"] ?? "none")") }
            if let id = chunk["id"] as? String { ids.insert(id) } else { r.problems.append("event \(i) has no id") }
            guard let choices = chunk["choices"] as? [[String: Any]] else {
                r.problems.append("event \(i) has no choices")
                continue
            }
            if choices.isEmpty {  // the usage chunk
                r.problems += usageProblems(chunk["usage"], maxTokens: maxTokens)
                continue
            }
            let choice = choices[0]
            if let f = choice["finish_reason"] as? String { finishes.append(f) }
            let piece = kind == .chat ? (choice["delta"] as? [String: Any])?["content"] as? String : choice["text"] as? String
            r.text += piece ?? ""
        }
        if ids.count != 1 { r.problems.append("\(ids.count) ids in one stream") }
        if finishes.count != 1 || !finishReasons.contains(finishes[0]) { r.problems.append("finish reasons \(finishes)") }
        return r
    }

    static func usageProblems(_ value: Any?, maxTokens: Int) -> [String] {
        guard let usage = value as? [String: Any], let prompt = usage["prompt_tokens"] as? Int,
              let completion = usage["completion_tokens"] as? Int, let total = usage["total_tokens"] as? Int else {
            return ["usage \(value ?? "none")"]
        }
        var problems: [String] = []
        if prompt < 1 { problems.append("prompt_tokens \(prompt)") }
        if !(1...maxTokens).contains(completion) { problems.append("completion_tokens \(completion) (max_tokens \(maxTokens))") }
        if total != prompt + completion { problems.append("total_tokens \(total) != \(prompt) + \(completion)") }
        return problems
    }
}
