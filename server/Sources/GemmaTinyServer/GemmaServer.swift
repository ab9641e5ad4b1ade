import Foundation
import GemmaTiny
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Settings of a ``GemmaServer``.
public struct GemmaServerConfiguration: Sendable {
    /// Where the server listens.
    public enum Address: Sendable, Equatable, CustomStringConvertible {
        /// A TCP host and port; port 0 picks a free port (reported to `onRunning`).
        case tcp(host: String, port: Int)
        /// A Unix domain socket. A stale socket file at the path (nobody answers on it) is
        /// replaced, a live server's is not; the file is removed when the server stops.
        case unixSocket(path: String)

        public var description: String {
            switch self {
            case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            case .unixSocket(let path): return path
            }
        }
    }

    public var address: Address
    /// Generation slots: sessions serving requests at the same time, their tokens interleaved
    /// on the engine's compute thread.
    public var parallel: Int
    /// Requests that may wait for a slot; one more gets 429.
    public var maxQueue: Int
    /// Largest request body accepted; a larger one gets 413.
    public var maxBodyBytes: Int
    /// On SIGTERM / SIGINT (or ``GemmaServer/shutdown()``): how long running requests may take
    /// to finish before they are cancelled. New requests are refused (503) meanwhile.
    public var shutdownGracePeriod: Duration
    /// Context length of the server's sessions; nil = the engine's default.
    public var contextLength: Int?
    /// Sampling used for fields a request leaves out.
    public var defaultSampling: SamplingOptions
    /// `max_tokens` of a chat request that gives none (nil = until the end of the turn or of
    /// the context). `/v1/completions` defaults to 16, as OpenAI's API does.
    public var defaultChatMaxTokens: Int?
    /// `max_tokens` of a completions request that gives none.
    public var defaultCompletionMaxTokens: Int?
    /// Timeouts for slow and idle clients, and the most connections open at once.
    public var connectionLimits: ConnectionLimits
    /// Accepted Host values besides loopback and the bound address; CORS origins.
    public var requestPolicy: RequestPolicy
    /// When set, every request but `/health` needs `Authorization: Bearer <apiKey>` (else 401).
    public var apiKey: String?
    /// Other names accepted in a request's `model` (and listed by `/v1/models`) for the model.
    public var modelAliases: [String]

    public init(address: Address = .tcp(host: "127.0.0.1", port: 8080), parallel: Int = 2, maxQueue: Int = 8,
                maxBodyBytes: Int = 1 << 20, shutdownGracePeriod: Duration = .seconds(10), contextLength: Int? = nil,
                defaultSampling: SamplingOptions = SamplingOptions(), defaultChatMaxTokens: Int? = nil,
                defaultCompletionMaxTokens: Int? = 16, connectionLimits: ConnectionLimits = ConnectionLimits(),
                requestPolicy: RequestPolicy = RequestPolicy(), apiKey: String? = nil, modelAliases: [String] = []) {
        self.address = address
        self.parallel = parallel
        self.maxQueue = maxQueue
        self.maxBodyBytes = maxBodyBytes
        self.shutdownGracePeriod = shutdownGracePeriod
        self.contextLength = contextLength
        self.defaultSampling = defaultSampling
        self.defaultChatMaxTokens = defaultChatMaxTokens
        self.defaultCompletionMaxTokens = defaultCompletionMaxTokens
        self.connectionLimits = connectionLimits
        self.requestPolicy = requestPolicy
        self.apiKey = apiKey
        self.modelAliases = modelAliases
    }
}

/// Where a running server listens.
public struct ServerAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String?
    public var port: Int?
    public var unixSocketPath: String?

    public var description: String {
        if let unixSocketPath { return "unix:\(unixSocketPath)" }
        let h = host.map { $0.contains(":") ? "[\($0)]" : $0 } ?? "?"
        return "http://\(h):\(port ?? 0)"
    }
}

/// An OpenAI-compatible HTTP server over a ``GemmaEngine`` (Hummingbird 2):
///
/// - `POST /v1/chat/completions`, `POST /v1/completions`: JSON, or server-sent events with
///   `"stream": true` (`data: {...}` chunks, then `data: [DONE]`).
/// - `GET /v1/models`, `GET /v1/models/{id}`: the one model, named after its file, and its
///   aliases (``GemmaServerConfiguration/modelAliases``).
/// - `GET /health`: `{"status":"ok", ...}` with slot and queue counts; 503 while shutting down.
///
/// Errors are OpenAI-shaped JSON (`{"error":{"message","type","param","code"}}`): 400 for
/// malformed JSON or fields, 401 without the ``GemmaServerConfiguration/apiKey`` (when one is
/// set; `/health` needs none), 404 for another model or path, 405 for a wrong method, 408 for a
/// request too slow to arrive, 413 for a body over the limit, 415 for a body that is not JSON,
/// 421 for a Host the ``RequestPolicy`` does not accept, 429 when the queue is full, 503 while
/// shutting down or over the connection limit. A client that disconnects (or closes its
/// sending side) cancels its generation within one token, or leaves the queue, and frees its
/// slot. See ``ConnectionLimits`` for the timeouts.
public final class GemmaServer: Sendable {
    public let engine: GemmaEngine
    public let configuration: GemmaServerConfiguration
    let pool: SessionPool
    let logger: Logger
    let modelCreated: Int
    let connections: ConnectionRegistry
    private let draining = Atomic<Bool>(false)
    private let group = Mutex<ServiceGroup?>(nil)
    private let shutdownRequested = Atomic<Bool>(false)
    private let connectionCloser = Mutex<Task<Void, any Error>?>(nil)

    public init(engine: GemmaEngine, configuration: GemmaServerConfiguration = GemmaServerConfiguration(),
                logger: Logger = Logger(label: "gemma-tiny.server")) {
        self.engine = engine
        self.configuration = configuration
        self.logger = logger
        pool = SessionPool(engine: engine, capacity: configuration.parallel, maxQueue: configuration.maxQueue,
                           contextLength: configuration.contextLength)
        connections = ConnectionRegistry(limit: configuration.connectionLimits.maxConnections)
        let attributes = try? FileManager.default.attributesOfItem(atPath: engine.path)
        modelCreated = Int((attributes?[.modificationDate] as? Date ?? Date()).timeIntervalSince1970)
    }

    /// The model id clients name in `model` (the file name without its extension).
    public var modelId: String { engine.name }

    /// Context length of the server's sessions.
    public var contextLength: Int { configuration.contextLength ?? engine.defaultContextLength }

    /// Runs until shut down: by one of `gracefulShutdownSignals`, by ``shutdown()``, or by
    /// cancelling the calling task. Shutdown is graceful: new requests get 503, running ones
    /// get ``GemmaServerConfiguration/shutdownGracePeriod`` to finish, then are cancelled.
    ///
    /// - Parameter onRunning: called once the server listens, with its address (the actual
    ///   port when port 0 was asked for).
    public func run(gracefulShutdownSignals: [UnixSignal] = [.sigterm, .sigint],
                    onRunning: @escaping @Sendable (ServerAddress) async -> Void = { _ in }) async throws {
        let bind: BindAddress
        switch configuration.address {
        case .tcp(let host, let port):
            bind = .hostname(host, port: port)
        case .unixSocket(let path):
            try UnixSocketPath.prepare(path)
            bind = .unixDomainSocket(path: path)
        }
        // The socket file this server made, removed when it stops.
        let socketFile = Mutex<[UInt64]?>(nil)
        defer {
            if case .unixSocket(let path) = configuration.address { UnixSocketPath.remove(path, ifStill: socketFile.withLock { $0 }) }
        }
        let router = Router(context: ServerRequestContext.self)
        router.add(middleware: APIErrorMiddleware())
        var boundHost: String?
        if case .tcp(let host, _) = configuration.address { boundHost = host }
        router.add(middleware: RequestPolicyMiddleware(policy: configuration.requestPolicy, boundHost: boundHost))
        // After the policy (which answers CORS preflights, sent without credentials, and puts
        // the CORS headers on a 401 too), before any route reads a body.
        if let apiKey = configuration.apiKey { router.add(middleware: APIKeyMiddleware(key: apiKey)) }
        addRoutes(to: router)
        let limits = configuration.connectionLimits
        let connections = self.connections
        let app = Application(
            router: router,
            server: HTTPServerBuilder { responder in
                GuardedHTTP1Channel(http1: HTTP1Channel(responder: responder), limits: limits, registry: connections)
            },
            configuration: .init(address: bind, serverName: "gemma-tiny"),
            onServerRunning: { channel in
                let address = Self.address(of: channel)
                if let path = address.unixSocketPath { socketFile.withLock { $0 = UnixSocketPath.identity(path) } }
                await onRunning(address)
            },
            logger: logger)
        let drain = DrainService(server: self)
        // Services shut down in reverse order: the drain first (refuse new work, let running
        // requests finish, then cancel them), then the HTTP server.
        let serviceGroup = ServiceGroup(configuration: .init(
            services: [app, drain], gracefulShutdownSignals: gracefulShutdownSignals, logger: logger))
        group.withLock { $0 = serviceGroup }
        if shutdownRequested.load(ordering: .acquiring) { await serviceGroup.triggerGracefulShutdown() }
        defer { connectionCloser.withLock { $0?.cancel() } }
        do {
            try await serviceGroup.run()
        } catch let error as IOError where "\(error)".hasPrefix("bind(") {
            // NIO's message names neither the address nor the problem plainly.
            throw ServerError("cannot listen on \(configuration.address): \(String(cString: strerror(error.errnoCode)))")
        }
    }

    /// Starts a graceful shutdown of a running server (as SIGTERM does); `run` then returns.
    public func shutdown() async {
        shutdownRequested.store(true, ordering: .releasing)
        if let g = group.withLock({ $0 }) { await g.triggerGracefulShutdown() }
    }

    /// True from the start of a shutdown: new generation requests get 503.
    public var isDraining: Bool { draining.load(ordering: .acquiring) }

    /// Refuses new work, waits up to the grace period for running requests, then cancels them
    /// and waits (briefly) for them to end.
    func drain() async {
        draining.store(true, ordering: .releasing)
        let clock = ContinuousClock()
        let deadline = clock.now + configuration.shutdownGracePeriod
        func idle() -> Bool { let l = pool.load; return l.busy == 0 && l.waiting == 0 }
        // The grace period bounds every connection, not only the ones generating: when it
        // ends, whatever is still open (a client half-way through sending a request, an idle
        // keep-alive connection) is closed, so that the server can stop.
        let connections = self.connections
        let pool = self.pool
        let closer = Task {
            try await Task.sleep(until: deadline, clock: clock)
            // Requests still running are being cancelled now (below): let them write their
            // last event, briefly.
            let settle = clock.now + .seconds(1)
            while clock.now < settle, pool.load.busy > 0 || pool.load.waiting > 0 { try await Task.sleep(for: .milliseconds(20)) }
            try await Task.sleep(for: .milliseconds(100))
            connections.closeAll()
        }
        connectionCloser.withLock { $0 = closer }
        if Task.isCancelled {
            engine.cancelAll()
            return
        }
        while !idle() && clock.now < deadline && !Task.isCancelled { try? await Task.sleep(for: .milliseconds(20)) }
        if !idle() {
            let l = pool.load
            logger.notice("shutdown: cancelling \(l.busy) running and \(l.waiting) waiting requests")
            engine.cancelAll()
            let hardDeadline = clock.now + .seconds(5)
            while !idle() && clock.now < hardDeadline && !Task.isCancelled { try? await Task.sleep(for: .milliseconds(20)) }
        }
    }

    static func address(of channel: any Channel) -> ServerAddress {
        guard let a = channel.localAddress else { return ServerAddress() }
        switch a {
        case .unixDomainSocket: return ServerAddress(unixSocketPath: a.pathname)
        default: return ServerAddress(host: a.ipAddress, port: a.port)
        }
    }
}

/// A startup problem (bad socket path...).
public struct ServerError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Waits for the group's graceful shutdown, then drains the server.
private struct DrainService: Service {
    let server: GemmaServer

    func run() async throws {
        try? await gracefulShutdown()
        await server.drain()
    }
}

/// The request context: Hummingbird's basics plus the connection, to notice a client that
/// goes away.
struct ServerRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
