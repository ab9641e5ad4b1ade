import Foundation
import GemmaTiny
import Hummingbird
import Logging
import NIOCore
import Synchronization

extension GemmaServer {
    func addRoutes(to router: Router<ServerRequestContext>) {
        router.get("/health") { [self] _, _ in health() }
        router.head("/health") { [self] _, _ in
            let response = health()
            return Response(status: response.status, headers: response.headers)
        }
        router.get("/v1/models") { [self] _, _ in
            try json(ModelListBody(data: acceptedModelNames.map { ModelBody(id: $0, created: modelCreated) }))
        }
        router.get("/v1/models/{id}") { [self] _, context in
            let id = context.parameters.get("id") ?? ""
            guard acceptsModel(id) else { throw APIError.modelNotFound(id) }
            return try json(ModelBody(id: id, created: modelCreated))
        }
        router.post("/v1/chat/completions") { [self] request, context in
            try await chatCompletions(request, context)
        }
        router.post("/v1/completions") { [self] request, context in
            try await completions(request, context)
        }
    }

    /// The methods a known path answers to (the `Allow` header of a 405), nil for an unknown path.
    static func allowedMethods(path: String) -> String? {
        switch path {
        case "/health": return "GET, HEAD"
        case "/v1/models": return "GET"
        case "/v1/chat/completions", "/v1/completions": return "POST"
        default: return path.hasPrefix("/v1/models/") && path.count > "/v1/models/".count ? "GET" : nil
        }
    }

    // MARK: Handlers

    private func health() -> Response {
        let load = pool.load
        let stats = engine.stats
        let body: [String: Any] = [
            "status": isDraining ? "shutting_down" : "ok",
            "model": modelId,
            "slots": ["busy": load.busy, "total": pool.capacity],
            "queue": ["waiting": load.waiting, "max": pool.maxQueue],
            "generations": ["completed": stats.completedGenerations, "cancelled": stats.cancelledGenerations,
                            "failed": stats.failedGenerations],
            "tokens": ["prompt": stats.promptTokens, "cached_prompt": stats.cachedPromptTokens,
                       "generated": stats.generatedTokens],
        ]
        let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data()
        return Response(status: isDraining ? .serviceUnavailable : .ok,
                        headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(data: data)))
    }

    private func chatCompletions(_ request: Request, _ context: ServerRequestContext) async throws -> Response {
        let body = try await readBody(request, context.channel)
        let req = try decode(ChatCompletionRequest.self, body)
        try checkModel(req.fields.model)
        var options = try req.fields.generationOptions(defaults: configuration.defaultSampling,
                                                       defaultMaxTokens: configuration.defaultChatMaxTokens)
        options.responseFormat = try responseFormat(body)
        let prompt: [Int]
        do {
            prompt = try GemmaChatTemplate.tokens(for: req.messages, tokenizer: engine.tokenizer)
        } catch {
            throw APIError.from(error, param: "messages")
        }
        return try await generate(prompt: prompt, options: options, fields: req.fields, kind: .chat,
                                  channel: context.channel, logger: context.logger)
    }

    private func completions(_ request: Request, _ context: ServerRequestContext) async throws -> Response {
        let body = try await readBody(request, context.channel)
        let req = try decode(CompletionRequest.self, body)
        try checkModel(req.fields.model)
        if req.echo == true { throw APIError.badRequest("echo is not supported", param: "echo") }
        var options = try req.fields.generationOptions(defaults: configuration.defaultSampling,
                                                       defaultMaxTokens: configuration.defaultCompletionMaxTokens)
        options.responseFormat = try responseFormat(body)
        let tokenizer = engine.tokenizer
        var prompt: [Int]
        switch req.prompt {
        case .text(let text):
            prompt = (tokenizer.bosId >= 0 ? [tokenizer.bosId] : []) + tokenizer.encode(text)
        case .tokens(let ids):
            // Gemma needs <bos> first: add it when the ids lack it.
            prompt = ids
            if tokenizer.bosId >= 0 && ids.first != tokenizer.bosId { prompt.insert(tokenizer.bosId, at: 0) }
            let vocab = engine.model.config.vocabSize
            if let bad = ids.first(where: { $0 < 0 || $0 >= vocab }) {
                throw APIError.badRequest("token id \(bad) is outside the vocabulary (0..<\(vocab))", param: "prompt")
            }
        }
        return try await generate(prompt: prompt, options: options, fields: req.fields, kind: .completion,
                                  channel: context.channel, logger: context.logger)
    }

    enum Kind {
        case chat, completion
        var idPrefix: String { self == .chat ? "chatcmpl-" : "cmpl-" }
        var param: String { self == .chat ? "messages" : "prompt" }
    }

    /// Waits for a slot, then answers with one JSON body or a stream of server-sent events.
    private func generate(prompt: [Int], options: GenerationOptions, fields: SamplingFields, kind: Kind,
                          channel: any Channel, logger: Logger) async throws -> Response {
        guard prompt.count <= contextLength else {
            throw APIError.badRequest(
                "This model's context is \(contextLength) tokens, but the prompt is \(prompt.count) tokens",
                param: kind.param, code: "context_length_exceeded")
        }
        guard !isDraining else { throw APIError.shuttingDown }
        let watch = DisconnectWatch(channel: channel)
        // Waiting for a slot: a client that goes away leaves the queue.
        let waiting = Task { try await pool.acquire(prompt: prompt) }
        watch.onDisconnect { waiting.cancel() }
        let lease = try await withTaskCancellationHandler {
            try await waiting.value
        } onCancel: {
            waiting.cancel()
        }
        guard !watch.isDisconnected else {
            lease.release(cachedTokens: nil)
            throw CancellationError()
        }
        // From here a disconnect cancels the generation (the lease is this request's alone).
        let session = lease.session
        watch.onDisconnect { session.cancel() }
        let id = kind.idPrefix + Self.randomId()
        let created = Int(Date().timeIntervalSince1970)
        let model = modelId
        let start = ContinuousClock.now

        if fields.stream ?? false {
            let includeUsage = fields.streamOptions?.includeUsage ?? false
            let events = session.generate(tokens: prompt, options: options)
            let body = ResponseBody { writer in
                var summary: GenerationSummary?
                var failure: APIError?
                defer {
                    if summary == nil { session.cancel() }  // the write failed: stop generating
                    watch.disarm()
                    lease.release(cachedTokens: summary.map { prompt + $0.generatedTokens })
                    Self.log(logger, kind, id, summary, failure, start)
                }
                if kind == .chat {
                    try await writer.write(Self.event(ChatChunkBody(id: id, created: created, model: model,
                        choices: [.init(delta: .init(role: "assistant", content: ""), finishReason: nil)])))
                }
                do {
                    for try await event in events {
                        switch event {
                        case .chunk(let c):
                            guard !c.text.isEmpty else { continue }
                            try await writer.write(kind == .chat
                                ? Self.event(ChatChunkBody(id: id, created: created, model: model,
                                                           choices: [.init(delta: .init(content: c.text))]))
                                : Self.event(CompletionBody(id: id, created: created, model: model,
                                                            choices: [.init(text: c.text)])))
                        case .finished(let s):
                            summary = s
                        }
                    }
                } catch let error as EngineError {
                    failure = APIError.from(error, param: kind.param)
                }
                if watch.isDisconnected { throw CancellationError() }
                if let s = summary, s.stopReason == .cancelled {
                    failure = .shuttingDown  // only a shutdown cancels a request that is still connected
                }
                if let failure {
                    try await writer.write(Self.sse(failure.jsonData))
                } else if let s = summary {
                    let reason = finishReason(s.stopReason)
                    let usage = UsageBody(s.usage)
                    if kind == .chat {
                        try await writer.write(Self.event(ChatChunkBody(id: id, created: created, model: model,
                            choices: [.init(delta: .init(), finishReason: reason)])))
                        if includeUsage {
                            try await writer.write(Self.event(ChatChunkBody(id: id, created: created, model: model,
                                                                            choices: [], usage: usage)))
                        }
                    } else {
                        try await writer.write(Self.event(CompletionBody(id: id, created: created, model: model,
                            choices: [.init(text: "", finishReason: reason)])))
                        if includeUsage {
                            try await writer.write(Self.event(CompletionBody(id: id, created: created, model: model,
                                                                             choices: [], usage: usage)))
                        }
                    }
                }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
            }
            return Response(status: .ok,
                            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                            body: body)
        }

        // One JSON body.
        var summary: GenerationSummary?
        var failure: APIError?
        defer {
            if summary == nil { session.cancel() }
            watch.disarm()
            lease.release(cachedTokens: summary.map { prompt + $0.generatedTokens })
            Self.log(logger, kind, id, summary, failure, start)
        }
        let completion: Completion
        do {
            completion = try await session.completion(tokens: prompt, options: options)
        } catch {
            if watch.isDisconnected || error == .cancelled { throw CancellationError() }
            failure = APIError.from(error, param: kind.param)
            throw failure!
        }
        summary = completion.summary
        if watch.isDisconnected { throw CancellationError() }
        if completion.summary.stopReason == .cancelled {
            failure = .shuttingDown
            throw failure!
        }
        let usage = UsageBody(completion.summary.usage)
        let reason = finishReason(completion.summary.stopReason)
        switch kind {
        case .chat:
            return try json(ChatCompletionBody(id: id, created: created, model: model,
                choices: [.init(message: .init(content: completion.text), finishReason: reason)], usage: usage))
        case .completion:
            return try json(CompletionBody(id: id, created: created, model: model,
                choices: [.init(text: completion.text, finishReason: reason)], usage: usage))
        }
    }

    // MARK: Helpers

    private func readBody(_ request: Request, _ channel: any Channel) async throws -> ByteBuffer {
        let limit = configuration.maxBodyBytes
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw APIError.bodyTooLarge(limit: limit)
        }
        // Every check on the headers has passed: a client waiting with `Expect: 100-continue`
        // may send its body now.
        try? await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: ConnectionGuardHandler.self).sendContinueIfAwaited()
        }.get()
        do {
            return try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw APIError.bodyTooLarge(limit: limit)
        } catch {
            // The connection closed before the whole body came (the client left, or was too
            // slow and timed out): nobody reads an answer.
            throw CancellationError()
        }
    }

    private func decode<T: Decodable>(_ type: T.Type, _ body: ByteBuffer) throws -> T {
        let data = Data(buffer: body)
        if let offset = firstInvalidUTF8Offset(data) {
            throw APIError.badRequest("The request body is not valid UTF-8 (at byte \(offset))", code: "invalid_json")
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw decodingAPIError(error, body: data)
        }
    }

    /// `response_format`, read from the body's text (see `ResponseFormat.openAI(requestBody:)`).
    private func responseFormat(_ body: ByteBuffer) throws -> ResponseFormat {
        do {
            return try ResponseFormat.openAI(requestBody: String(decoding: body.readableBytesView, as: UTF8.self)) ?? .text
        } catch {
            throw APIError.badRequest(error.message, param: "response_format", code: "invalid_response_format")
        }
    }

    private func checkModel(_ model: String?) throws {
        if let model, !acceptsModel(model) { throw APIError.modelNotFound(model) }
    }

    func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try apiJSONEncoder().encode(value)
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(data: data)))
    }

    static func event(_ value: some Encodable) -> ByteBuffer {
        sse((try? apiJSONEncoder().encode(value)) ?? Data("{}".utf8))
    }

    static func sse(_ data: Data) -> ByteBuffer {
        var buffer = ByteBuffer(string: "data: ")
        buffer.writeBytes(data)
        buffer.writeString("\n\n")
        return buffer
    }

    static func randomId() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<3).map { _ in String(g.next() as UInt64, radix: 16) }.joined().prefix(24).description
    }

    static func log(_ logger: Logger, _ kind: Kind, _ id: String, _ summary: GenerationSummary?, _ failure: APIError?,
                    _ start: ContinuousClock.Instant) {
        let ms = Int((ContinuousClock.now - start).seconds * 1000)
        if let failure {
            logger.info("\(id): error \(failure.status.code) \(failure.message) (\(ms) ms)")
        } else if let s = summary {
            logger.info("\(id): \(s.usage.promptTokens) prompt tokens (\(s.usage.cachedPromptTokens) cached), \(s.usage.completionTokens) generated, \(s.stopReason.rawValue), \(ms) ms")
        } else {
            logger.info("\(id): client went away (\(ms) ms)")
        }
    }
}

/// Stable key order and unescaped slashes, so bodies and logs read the same every time.
func apiJSONEncoder() -> JSONEncoder {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return encoder
}

extension Duration {
    fileprivate var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}

/// Runs an action when the client's connection closes, until disarmed. Actions are replaced:
/// only the latest one runs (first "leave the queue", then "cancel the generation").
final class DisconnectWatch: Sendable {
    private struct State {
        var disconnected = false
        var armed = true
        var action: (@Sendable () -> Void)?
    }

    private let state = Mutex(State())

    init(channel: any Channel) {
        channel.closeFuture.whenComplete { [weak self] _ in self?.fire() }
    }

    var isDisconnected: Bool { state.withLock { $0.disconnected } }

    /// Sets the action; runs it at once if the client is already gone.
    func onDisconnect(_ action: @escaping @Sendable () -> Void) {
        state.withLock { s in
            guard s.armed else { return }
            s.action = action
            if s.disconnected { action() }
        }
    }

    /// No action runs after this (the request is over; the session may serve someone else).
    func disarm() {
        state.withLock { s in
            s.armed = false
            s.action = nil
        }
    }

    /// Actions run under the lock, so none can run after `disarm` returns. (They only take
    /// the engine's or the pool's lock, never this one.)
    private func fire() {
        state.withLock { s in
            s.disconnected = true
            if s.armed { s.action?() }
        }
    }
}
