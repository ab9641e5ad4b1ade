import Foundation
@_spi(Testing) import GemmaTiny
import GemmaTinyServer
import Synchronization
import XCTest

/// `gemma-tiny serve` over real HTTP on loopback: the OpenAI-compatible endpoints, streaming,
/// concurrency, disconnects, limits and errors, shutdown.
final class ServerTests: XCTestCase {
    static var chatBody: [String: Any] { [
        "model": "tiny-gemma",
        "messages": [["role": "system", "content": "Be brief."], ["role": "user", "content": "Write a short poem about the sea."]],
        "temperature": 0, "max_tokens": 12,
    ] }

    /// What the library itself generates for the chat body above (greedy, 12 tokens).
    func expectedChatReply(_ engine: GemmaEngine) async throws -> Completion {
        var options = GenerationOptions.greedy(maxTokens: 12)
        options.stopAtEndOfSequence = true
        return try await engine.makeSession().chatCompletion(
            messages: [.system("Be brief."), .user("Write a short poem about the sea.")], options: options)
    }

    func testServerHealthAndModels() async throws {
        let server = try await TestServer.start()
        let health = try await server.get("/health")
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(health.json["status"] as? String, "ok")
        XCTAssertEqual(health.json["model"] as? String, "tiny-gemma")
        XCTAssertEqual(health.headers["content-type"], "application/json")

        let models = try await server.get("/v1/models")
        XCTAssertEqual(models.status, 200)
        XCTAssertEqual(models.json["object"] as? String, "list")
        let data = try XCTUnwrap(models.json["data"] as? [[String: Any]])
        XCTAssertEqual(data.count, 1)
        XCTAssertEqual(data.first?["id"] as? String, "tiny-gemma")
        XCTAssertEqual(data.first?["object"] as? String, "model")
        XCTAssertNotNil(data.first?["created"] as? Int)

        let one = try await server.get("/v1/models/tiny-gemma")
        XCTAssertEqual(one.status, 200)
        XCTAssertEqual(one.json["id"] as? String, "tiny-gemma")
        let other = try await server.get("/v1/models/gpt-4")
        XCTAssertEqual(other.status, 404)
        XCTAssertEqual(other.error["code"] as? String, "model_not_found")

        let unknown = try await server.get("/v1/nothing")
        XCTAssertEqual(unknown.status, 404)
        XCTAssertNotNil(unknown.error["message"] as? String)
        try await server.stop()
    }

    func testServerChatCompletionNonStreaming() async throws {
        let server = try await TestServer.start()
        let expected = try await expectedChatReply(server.engine)
        let reply = try await server.post("/v1/chat/completions", json: Self.chatBody)
        XCTAssertEqual(reply.status, 200, reply.body)
        XCTAssertEqual(reply.headers["content-type"], "application/json")
        let json = reply.json
        XCTAssertEqual(json["object"] as? String, "chat.completion")
        XCTAssertEqual(json["model"] as? String, "tiny-gemma")
        XCTAssertTrue((json["id"] as? String)?.hasPrefix("chatcmpl-") ?? false)
        let choice = try XCTUnwrap((json["choices"] as? [[String: Any]])?.first)
        let message = try XCTUnwrap(choice["message"] as? [String: Any])
        XCTAssertEqual(message["role"] as? String, "assistant")
        XCTAssertEqual(message["content"] as? String, expected.text)
        XCTAssertEqual(choice["finish_reason"] as? String, expected.summary.stopReason == .maxTokens ? "length" : "stop")
        let usage = try XCTUnwrap(json["usage"] as? [String: Any])
        let promptTokens = try server.engine.countTokens(messages: [.system("Be brief."), .user("Write a short poem about the sea.")])
        XCTAssertEqual(usage["prompt_tokens"] as? Int, promptTokens)
        XCTAssertEqual(usage["completion_tokens"] as? Int, expected.summary.usage.completionTokens)
        XCTAssertEqual(usage["total_tokens"] as? Int, promptTokens + expected.summary.usage.completionTokens)

        // The model field is optional; the same conversation again reuses the slot's cache.
        var body = Self.chatBody
        body["model"] = nil
        let again = try await server.post("/v1/chat/completions", json: body)
        XCTAssertEqual(again.status, 200)
        let details = (again.json["usage"] as? [String: Any])?["prompt_tokens_details"] as? [String: Any]
        XCTAssertEqual(details?["cached_tokens"] as? Int, promptTokens - 1)
        let againChoice = (again.json["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any]
        XCTAssertEqual(againChoice?["content"] as? String, expected.text)

        // Content given as an array of text parts.
        body["messages"] = [["role": "user", "content": [["type": "text", "text": "Write a short "], ["type": "text", "text": "poem about the sea."]]]]
        let parts = try await server.post("/v1/chat/completions", json: body)
        XCTAssertEqual(parts.status, 200, parts.body)
        try await server.stop()
    }

    func testServerChatCompletionStreaming() async throws {
        let server = try await TestServer.start()
        let expected = try await expectedChatReply(server.engine)
        var body = Self.chatBody
        body["stream"] = true
        body["stream_options"] = ["include_usage": true]
        let reply = try await server.post("/v1/chat/completions", json: body)
        XCTAssertEqual(reply.status, 200)
        XCTAssertEqual(reply.headers["content-type"], "text/event-stream")
        let events = sseEvents(reply.body)
        XCTAssertEqual(events.last, "[DONE]")
        XCTAssertTrue(reply.body.hasSuffix("data: [DONE]\n\n"))
        let chunks = events.dropLast().map(jsonObject)
        XCTAssertTrue(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" })
        XCTAssertEqual(Set(chunks.compactMap { $0["id"] as? String }).count, 1)
        let first = (chunks.first?["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any]
        XCTAssertEqual(first?["role"] as? String, "assistant")
        var text = ""
        var finish: String?
        for c in chunks {
            guard let choice = (c["choices"] as? [[String: Any]])?.first else { continue }
            text += ((choice["delta"] as? [String: Any])?["content"] as? String) ?? ""
            if let f = choice["finish_reason"] as? String { finish = f }
        }
        XCTAssertEqual(text, expected.text)
        XCTAssertEqual(finish, expected.summary.stopReason == .maxTokens ? "length" : "stop")
        let usage = try XCTUnwrap(chunks.last?["usage"] as? [String: Any])
        XCTAssertEqual(usage["completion_tokens"] as? Int, expected.summary.usage.completionTokens)
        XCTAssertEqual((chunks.last?["choices"] as? [Any])?.count, 0)
        try await server.stop()
    }

    func testServerCompletionsNonStreamingAndStreaming() async throws {
        let server = try await TestServer.start()
        let expected = try await server.engine.makeSession().completion(prompt: "The cat sat.", options: .greedy(maxTokens: 10))
        let plain = try await server.post("/v1/completions", json: ["prompt": "The cat sat.", "max_tokens": 10, "temperature": 0])
        XCTAssertEqual(plain.status, 200, plain.body)
        XCTAssertEqual(plain.json["object"] as? String, "text_completion")
        XCTAssertTrue((plain.json["id"] as? String)?.hasPrefix("cmpl-") ?? false)
        let choice = try XCTUnwrap((plain.json["choices"] as? [[String: Any]])?.first)
        XCTAssertEqual(choice["text"] as? String, expected.text)
        XCTAssertEqual(choice["index"] as? Int, 0)
        XCTAssertTrue(choice.keys.contains("logprobs"))
        let usage = try XCTUnwrap(plain.json["usage"] as? [String: Any])
        XCTAssertEqual(usage["prompt_tokens"] as? Int, expected.summary.usage.promptTokens)
        XCTAssertEqual(usage["completion_tokens"] as? Int, expected.summary.usage.completionTokens)

        let streamed = try await server.post("/v1/completions", json: ["prompt": ["The cat sat."], "max_tokens": 10,
                                                                       "temperature": 0, "stream": true])
        XCTAssertEqual(streamed.status, 200)
        let events = sseEvents(streamed.body)
        XCTAssertEqual(events.last, "[DONE]")
        let chunks = events.dropLast().map(jsonObject)
        let text = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["text"] as? String }.joined()
        XCTAssertEqual(text, expected.text)
        XCTAssertNotNil((chunks.last?["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String)

        // Token ids as the prompt (<bos> added when missing), default max_tokens 16, a stop string.
        let ids = server.engine.tokenize("The cat sat.")
        let tokens = try await server.post("/v1/completions", json: ["prompt": ids, "max_tokens": 10, "temperature": 0])
        XCTAssertEqual((tokens.json["choices"] as? [[String: Any]])?.first?["text"] as? String, expected.text)
        let defaults = try await server.post("/v1/completions", json: ["prompt": "The cat sat.", "temperature": 0])
        let defaultUsage = defaults.json["usage"] as? [String: Any]
        XCTAssertLessThanOrEqual(defaultUsage?["completion_tokens"] as? Int ?? 99, 16)
        let stop = String(expected.text.dropFirst(2).prefix(2))
        let stopped = try await server.post("/v1/completions", json: ["prompt": "The cat sat.", "max_tokens": 10,
                                                                     "temperature": 0, "stop": stop, "seed": 1])
        let stoppedChoice = (stopped.json["choices"] as? [[String: Any]])?.first
        XCTAssertEqual(stoppedChoice?["finish_reason"] as? String, "stop")
        XCTAssertFalse((stoppedChoice?["text"] as? String ?? stop).contains(stop))
        try await server.stop()
    }

    /// Several requests at once, over more connections than slots: all answered, identically.
    func testServerConcurrentRequests() async throws {
        let server = try await TestServer.start(parallel: 2, maxQueue: 8)
        let replies = try await withThrowingTaskGroup(of: TestServer.Reply.self) { group in
            for i in 0..<6 {
                group.addTask {
                    var body = Self.chatBody
                    if i % 2 == 1 { body["stream"] = true }
                    return try await server.post("/v1/chat/completions", json: body)
                }
            }
            var all: [TestServer.Reply] = []
            for try await r in group { all.append(r) }
            return all
        }
        let expected = try await expectedChatReply(server.engine).text
        for r in replies {
            XCTAssertEqual(r.status, 200, r.body)
            if r.headers["content-type"] == "text/event-stream" {
                let text = sseEvents(r.body).dropLast().map(jsonObject).compactMap {
                    (($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String
                }.joined()
                XCTAssertEqual(text, expected)
            } else {
                XCTAssertEqual(((r.json["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String, expected)
            }
        }
        try await server.stop()
    }

    /// A client that goes away mid-stream cancels its generation and frees its slot; the server
    /// keeps serving.
    func testServerClientDisconnectCancelsGeneration() async throws {
        let server = try await TestServer.start(parallel: 1, stepDelay: .milliseconds(3))
        let connection = try RawConnection(port: server.address.port!)
        connection.send(path: "/v1/completions", body: #"{"prompt":"The cat sat.","max_tokens":200,"temperature":0,"stream":true}"#)
        XCTAssertTrue(connection.read { $0.components(separatedBy: "data: ").count > 3 }, connection.received)
        XCTAssertTrue(connection.received.hasPrefix("HTTP/1.1 200"))
        connection.close()
        let cancelled = await eventually { server.engine.stats.cancelledGenerations == 1 }
        XCTAssertTrue(cancelled, "the generation was not cancelled")
        XCTAssertLessThan(server.engine.stats.generatedTokens, 150)
        let freed = try await eventually {
            let h = try await server.get("/health")
            return ((h.json["slots"] as? [String: Any])?["busy"] as? Int) == 0
        }
        XCTAssertTrue(freed)
        let next = try await server.post("/v1/completions", json: ["prompt": "Hello", "max_tokens": 3])
        XCTAssertEqual(next.status, 200)

        // Disconnecting while waiting in the queue leaves the queue.
        let busy = try RawConnection(port: server.address.port!)
        busy.send(path: "/v1/completions", body: #"{"prompt":"The cat sat.","max_tokens":200,"stream":true}"#)
        XCTAssertTrue(busy.read { $0.contains("data: ") })
        let waiting = try RawConnection(port: server.address.port!)
        waiting.send(path: "/v1/completions", body: #"{"prompt":"Hello","max_tokens":5}"#)
        let queued = try await eventually {
            ((try await server.get("/health")).json["queue"] as? [String: Any])?["waiting"] as? Int == 1
        }
        XCTAssertTrue(queued)
        waiting.close()
        let left = try await eventually {
            ((try await server.get("/health")).json["queue"] as? [String: Any])?["waiting"] as? Int == 0
        }
        XCTAssertTrue(left, "the disconnected request stayed in the queue")
        busy.close()
        try await server.stop()
    }

    func testServerMalformedRequestsAre400() async throws {
        let server = try await TestServer.start()
        func check(_ path: String, _ body: String, param: String?, code: String? = nil, file: StaticString = #filePath,
                   line: UInt = #line) async throws {
            let r = try await server.post(path, body: body)
            XCTAssertEqual(r.status, 400, r.body, file: file, line: line)
            XCTAssertEqual(r.headers["content-type"], "application/json", file: file, line: line)
            let error = r.error
            XCTAssertEqual(error["type"] as? String, "invalid_request_error", r.body, file: file, line: line)
            XCTAssertFalse((error["message"] as? String ?? "").isEmpty, file: file, line: line)
            XCTAssertTrue(error.keys.contains("param") && error.keys.contains("code"), r.body, file: file, line: line)
            XCTAssertEqual(error["param"] as? String, param, r.body, file: file, line: line)
            if let code { XCTAssertEqual(error["code"] as? String, code, r.body, file: file, line: line) }
        }
        let chat = "/v1/chat/completions", completions = "/v1/completions"
        try await check(chat, #"{"messages": [{"role": "user", "content": "hi"}"#, param: nil, code: "invalid_json")
        try await check(chat, "not json at all", param: nil, code: "invalid_json")
        try await check(chat, "[1, 2]", param: nil, code: "invalid_json")
        try await check(chat, "", param: nil, code: "invalid_json")
        try await check(chat, #"{"model": "tiny-gemma"}"#, param: "messages")
        try await check(chat, #"{"messages": "hi"}"#, param: "messages")
        try await check(chat, #"{"messages": []}"#, param: "messages")
        try await check(chat, #"{"messages": [{"role": "robot", "content": "hi"}]}"#, param: "messages[0].role")
        try await check(chat, #"{"messages": [{"content": "hi"}]}"#, param: "messages[0].role")
        try await check(chat, #"{"messages": [{"role": "user", "content": 5}]}"#, param: "messages[0].content")
        let ok = #""messages": [{"role": "user", "content": "hi"}]"#
        try await check(chat, #"{\#(ok), "temperature": "hot"}"#, param: "temperature")
        try await check(chat, #"{\#(ok), "temperature": 3}"#, param: "temperature")
        try await check(chat, #"{\#(ok), "top_p": 1.5}"#, param: "top_p")
        try await check(chat, #"{\#(ok), "max_tokens": 0}"#, param: "max_tokens")
        try await check(chat, #"{\#(ok), "max_tokens": 2.5}"#, param: "max_tokens")
        try await check(chat, #"{\#(ok), "max_tokens": "ten"}"#, param: "max_tokens")
        try await check(chat, #"{\#(ok), "stop": 5}"#, param: "stop")
        try await check(chat, #"{\#(ok), "stream": "yes"}"#, param: "stream")
        try await check(chat, #"{\#(ok), "seed": "x"}"#, param: "seed")
        try await check(chat, #"{\#(ok), "n": 2}"#, param: "n")
        try await check(chat, #"{\#(ok), "model": 7}"#, param: "model")
        try await check(completions, #"{"max_tokens": 5}"#, param: "prompt")
        try await check(completions, #"{"prompt": {"a": 1}}"#, param: "prompt")
        try await check(completions, #"{"prompt": ["a", "b"]}"#, param: "prompt")
        try await check(completions, #"{"prompt": [2, 99999]}"#, param: "prompt")
        let long = String(repeating: "word ", count: 400)
        try await check(completions, #"{"prompt": "\#(long)"}"#, param: "prompt", code: "context_length_exceeded")
        // Unknown fields are ignored.
        let extra = try await server.post(chat, body: #"{\#(ok), "max_tokens": 2, "frequency_penalty": 0.5, "user": "u1", "logit_bias": {}}"#)
        XCTAssertEqual(extra.status, 200, extra.body)
        try await server.stop()
    }

    /// `repetition_penalty` (and llama.cpp's name for it, `repeat_penalty`) reaches the sampler:
    /// a greedy reply with it is the engine's with the same penalty, and not the one without
    /// (0.2, below 1, favours the prompt's tokens: the fixture's greedy reply repeats none, so a
    /// penalty above 1 would leave it as it is); a penalty that is not a positive number is a
    /// 400 naming the field.
    func testServerRepetitionPenaltyIsTheEngines() async throws {
        let server = try await TestServer.start()
        var options = GenerationOptions.greedy(maxTokens: 24)
        let plain = try await server.engine.makeSession().completion(prompt: "The cat sat.", options: options)
        options.sampling.repetitionPenalty = 0.2
        let penalized = try await server.engine.makeSession().completion(prompt: "The cat sat.", options: options)
        XCTAssertNotEqual(penalized.text, plain.text, "a penalty of 0.2 (it favours the prompt's tokens) changes this greedy reply")
        for field in ["repetition_penalty", "repeat_penalty"] {
            let r = try await server.post("/v1/completions", json: ["prompt": "The cat sat.", "max_tokens": 24, "temperature": 0, field: 0.2])
            XCTAssertEqual(r.status, 200, r.body)
            XCTAssertEqual((r.json["choices"] as? [[String: Any]])?.first?["text"] as? String, penalized.text, field)
        }
        for bad in ["0", "-1"] {
            let r = try await server.post("/v1/completions", body: #"{"prompt": "The cat sat.", "repetition_penalty": \#(bad)}"#)
            XCTAssertEqual(r.status, 400, r.body)
            XCTAssertEqual(r.error["param"] as? String, "repetition_penalty", r.body)
        }
        try await server.stop()
    }

    func testServerUnknownModelIs404() async throws {
        let server = try await TestServer.start()
        var body = Self.chatBody
        body["model"] = "gpt-4"
        let chat = try await server.post("/v1/chat/completions", json: body)
        XCTAssertEqual(chat.status, 404)
        XCTAssertEqual(chat.error["code"] as? String, "model_not_found")
        XCTAssertEqual(chat.error["param"] as? String, "model")
        XCTAssertEqual(chat.error["type"] as? String, "invalid_request_error")
        let completion = try await server.post("/v1/completions", json: ["model": "other", "prompt": "hi"])
        XCTAssertEqual(completion.status, 404)
        XCTAssertEqual(completion.error["code"] as? String, "model_not_found")
        try await server.stop()
    }

    func testServerBodyTooLargeIs413() async throws {
        let server = try await TestServer.start(maxBodyBytes: 2048)
        let big = #"{"prompt": "\#(String(repeating: "a", count: 8000))"}"#
        let withLength = try await server.post("/v1/completions", body: big)
        XCTAssertEqual(withLength.status, 413)
        XCTAssertEqual(withLength.error["code"] as? String, "request_too_large")
        let chunked = try await server.post("/v1/completions", body: big, chunked: true)
        XCTAssertEqual(chunked.status, 413)
        XCTAssertEqual(chunked.error["code"] as? String, "request_too_large")
        // Just under the limit is fine.
        let small = try await server.post("/v1/completions", body: #"{"prompt": "hi", "max_tokens": 2}"#, chunked: true)
        XCTAssertEqual(small.status, 200, small.body)
        try await server.stop()
    }

    /// One slot, a queue of one: the third concurrent request is refused with 429; the queued
    /// one is served when the slot frees.
    func testServerQueueFullIs429() async throws {
        let server = try await TestServer.start(parallel: 1, maxQueue: 1, stepDelay: .milliseconds(3))
        let running = try RawConnection(port: server.address.port!)
        running.send(path: "/v1/completions", body: #"{"prompt":"The cat sat.","max_tokens":200,"stream":true}"#)
        XCTAssertTrue(running.read { $0.contains("data: ") })
        let queued = Task { try await server.post("/v1/completions", json: ["prompt": "Hello", "max_tokens": 3]) }
        let waiting = try await eventually {
            ((try await server.get("/health")).json["queue"] as? [String: Any])?["waiting"] as? Int == 1
        }
        XCTAssertTrue(waiting)
        let refused = try await server.post("/v1/chat/completions", json: Self.chatBody)
        XCTAssertEqual(refused.status, 429)
        XCTAssertEqual(refused.error["code"] as? String, "rate_limit_exceeded")
        XCTAssertEqual(refused.headers["retry-after"], "1")
        running.close()
        let served = try await queued.value
        XCTAssertEqual(served.status, 200, served.body)
        try await server.stop()
    }

    func testServerOnUnixSocket() async throws {
        let path = ServerFixtures.tempDir + "/api-\(UUID().uuidString.prefix(8)).sock"
        let server = try await TestServer.start(unixSocket: path)
        XCTAssertEqual(server.address.unixSocketPath, path)
        let health = try RawConnection(unixSocket: path)
        health.send(method: "GET", path: "/health")
        XCTAssertTrue(health.read { $0.contains("\"status\":\"ok\"") }, health.received)
        health.close()
        let chat = try RawConnection(unixSocket: path)
        chat.send(path: "/v1/chat/completions", body: #"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"stream":true}"#)
        XCTAssertTrue(chat.read { $0.contains("data: [DONE]") }, chat.received)
        chat.close()
        try await server.stop()
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "the socket file was left behind")
    }

    /// Shutdown lets a running request finish, refuses new ones meanwhile, and cancels what is
    /// still running when the grace period ends.
    func testServerGracefulShutdown() async throws {
        let server = try await TestServer.start(grace: .seconds(5), stepDelay: .milliseconds(3))
        let inFlight = Task { try await server.post("/v1/completions", json: ["prompt": "The cat sat.", "max_tokens": 40,
                                                                              "stream": true]) }
        let started = await eventually { server.engine.stats.generatedTokens > 0 }
        XCTAssertTrue(started)
        let stopping = Task { await server.server.shutdown() }
        let draining = await eventually { server.server.isDraining }
        XCTAssertTrue(draining)
        let refused = try await server.post("/v1/completions", json: ["prompt": "Hello", "max_tokens": 2])
        XCTAssertEqual(refused.status, 503)
        XCTAssertEqual(refused.error["code"] as? String, "shutting_down")
        let finished = try await inFlight.value
        XCTAssertEqual(finished.status, 200)
        let events = sseEvents(finished.body)
        XCTAssertEqual(events.last, "[DONE]")
        XCTAssertEqual((jsonObject(events.dropLast().last ?? "")["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String, "length")
        await stopping.value
        try await server.waitUntilStopped()
        await server.engine.shutdown()

        // A grace period too short for the request: it is cancelled with an error event.
        let short = try await TestServer.start(grace: .milliseconds(100), stepDelay: .milliseconds(3))
        let long = Task { try await short.post("/v1/completions", json: ["prompt": "The cat sat.", "max_tokens": 1000,
                                                                         "stream": true]) }
        let going = await eventually { short.engine.stats.generatedTokens > 0 }
        XCTAssertTrue(going)
        try await short.stop()
        let cut = try await long.value
        let cutEvents = sseEvents(cut.body)
        XCTAssertEqual(cutEvents.last, "[DONE]")
        XCTAssertEqual((jsonObject(cutEvents.dropLast().last ?? "")["error"] as? [String: Any])?["code"] as? String, "shutting_down")
        XCTAssertLessThan(short.engine.stats.generatedTokens, 900)
    }
}
