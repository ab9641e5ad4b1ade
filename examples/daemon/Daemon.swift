// gemma-tiny-daemon-example: a minimal device daemon embedding the GemmaTiny library.
//
// It loads a model once, then answers line-delimited JSON requests on stdin, one session per
// conversation id, streaming each reply to stdout as it is generated:
//
//   {"conversation": "kitchen", "text": "What can I cook with eggs?"}
//   {"conversation": "garage", "text": "How do I check tyre pressure?"}
//
// Requests for different conversations run concurrently (their tokens are interleaved on the
// engine's compute thread); each conversation keeps its history, so its next turn only runs
// the new tokens. A real daemon would read from a socket or a message bus instead of stdin.
//
//   swift run gemma-tiny-daemon-example path/to/model.gtm < requests.jsonl

import Foundation
import GemmaTiny

struct Request: Decodable {
    var conversation: String
    var text: String
}

/// The daemon's state: one session and one message history per conversation.
actor Conversations {
    let engine: GemmaEngine
    private var sessions: [String: GemmaSession] = [:]
    private var histories: [String: [ChatMessage]] = [:]

    init(engine: GemmaEngine) { self.engine = engine }

    func begin(_ id: String, user text: String) throws -> (GemmaSession, [ChatMessage]) {
        let session = try sessions[id] ?? engine.makeSession(contextLength: 2048)
        sessions[id] = session
        var messages = histories[id] ?? [.system("You are a helpful assistant on a small home device. Answer briefly.")]
        messages.append(.user(text))
        histories[id] = messages
        return (session, messages)
    }

    func end(_ id: String, reply: String) {
        histories[id, default: []].append(.assistant(reply))
    }
}

@main
struct DaemonExample {
    static func main() async {
        guard CommandLine.arguments.count == 2 else {
            FileHandle.standardError.write(Data("usage: gemma-tiny-daemon-example MODEL.gtm < requests.jsonl\n".utf8))
            exit(2)
        }
        let engine: GemmaEngine
        do {
            engine = try await GemmaEngine.load(path: CommandLine.arguments[1])
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))  // names the file and the problem
            exit(1)
        }
        let conversations = Conversations(engine: engine)
        let options = GenerationOptions(maxTokens: 200, sampling: SamplingOptions(temperature: 0.7))

        await withTaskGroup(of: Void.self) { group in
            while let line = readLine() {
                guard let request = try? JSONDecoder().decode(Request.self, from: Data(line.utf8)) else {
                    print("{\"error\": \"cannot parse: \(line)\"}")
                    continue
                }
                group.addTask {
                    do {
                        let (session, messages) = try await conversations.begin(request.conversation, user: request.text)
                        var reply = ""
                        for try await event in session.chat(messages: messages, options: options) {
                            switch event {
                            case .chunk(let chunk):
                                reply += chunk.text
                                print("[\(request.conversation)] \(chunk.text)")
                            case .finished(let summary):
                                print("[\(request.conversation)] done: \(summary.stopReason.rawValue), "
                                      + "\(summary.usage.completionTokens) tokens, "
                                      + "\(summary.usage.cachedPromptTokens)/\(summary.usage.promptTokens) prompt tokens cached")
                            }
                        }
                        await conversations.end(request.conversation, reply: reply)
                    } catch {
                        print("[\(request.conversation)] error: \(error)")
                    }
                }
            }
        }
        let stats = engine.stats
        print("served \(stats.completedGenerations) replies, \(stats.generatedTokens) tokens")
        await engine.shutdown()
    }
}
