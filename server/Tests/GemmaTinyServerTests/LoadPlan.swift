import Foundation
import GemmaTiny

/// The requests of a load test, drawn from a seeded generator so that a run can be repeated:
/// chat and completions, streamed or not, greedy or sampled with a seed, some with a stop
/// string, and some clients that go away (mid-stream, or before a JSON reply arrives).
struct LoadRequest: Sendable {
    enum Kind: Sendable { case chat, completion }
    /// What the client does.
    enum Client: Sendable, Equatable {
        /// Reads the whole reply.
        case reads
        /// Closes the connection after this many `data:` events (if the stream lasts that long).
        case dropsAfterEvents(Int)
        /// Closes the connection right after sending the request.
        case dropsBeforeReply
    }

    var index: Int
    var kind: Kind
    var stream: Bool
    var maxTokens: Int
    var client: Client
    /// The JSON body, `stream` included.
    var body: String
    /// The body without `stream`: requests with equal keys must get equal text (every request
    /// is greedy or has a seed).
    var replyKey: String

    var path: String { kind == .chat ? "/v1/chat/completions" : "/v1/completions" }
}

enum LoadPlan {
    static let prompts = [
        "The cat sat on the mat.", "Write a short poem about the sea.", "Permission is hereby granted, free of charge,",
        "def add(a, b):", "Once upon a time", "Explain why the sky is blue in one sentence.",
    ]

    /// `count` requests. `streamDropRate` of the streamed ones close mid-stream at a random event;
    /// `replyDropRate` of the others close before their reply.
    static func make(count: Int, seed: UInt64, streamDropRate: Double = 0.15, replyDropRate: Double = 0.05,
                     maxTokens: ClosedRange<Int> = 4...24) -> [LoadRequest] {
        var rng = Xoshiro256StarStar(seed: seed)
        func below(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
        func chance(_ p: Double) -> Bool { Double(rng.next() >> 11) / Double(1 << 53) < p }

        return (0..<count).map { index in
            let kind: LoadRequest.Kind = below(2) == 0 ? .chat : .completion
            let stream = below(2) == 0
            let tokens = maxTokens.lowerBound + below(maxTokens.count)
            var fields: [String: Any] = ["max_tokens": tokens]
            if below(2) == 0 {
                fields["temperature"] = 0
            } else {
                fields["temperature"] = [0.7, 0.9, 1.0][below(3)]
                fields["top_p"] = [1.0, 0.9][below(2)]
                fields["min_p"] = 0  // the server's default (0.05) leaves the fixture's top token alone
                fields["seed"] = below(1000)
            }
            if below(5) == 0 { fields["stop"] = ["\n", " the"][below(2)] }
            let prompt = prompts[below(prompts.count)]
            switch kind {
            case .chat:
                var messages: [[String: String]] = []
                if below(3) == 0 { messages.append(["role": "system", "content": "Be brief."]) }
                messages.append(["role": "user", "content": prompt])
                fields["messages"] = messages
            case .completion:
                fields["prompt"] = prompt
            }
            let key = String(decoding: try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]), as: UTF8.self)
            if stream {
                fields["stream"] = true
                if below(2) == 0 { fields["stream_options"] = ["include_usage": true] }
            }
            let body = String(decoding: try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]), as: UTF8.self)
            let client: LoadRequest.Client
            if stream {
                client = chance(streamDropRate) ? .dropsAfterEvents(1 + below(tokens)) : .reads
            } else {
                client = chance(replyDropRate) ? .dropsBeforeReply : .reads
            }
            return LoadRequest(index: index, kind: kind, stream: stream, maxTokens: tokens, client: client,
                               body: body, replyKey: (kind == .chat ? "chat " : "completion ") + key)
        }
    }
}
