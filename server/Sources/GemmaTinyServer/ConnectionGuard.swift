import Foundation
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// Bounds on what one client connection may hold: how long it may take to send headers and
/// body, how long it may stay idle between requests, and how many connections may be open.
public struct ConnectionLimits: Sendable, Equatable {
    /// From the first byte of a request to the end of its headers; then 408 and the connection closes.
    public var headerTimeout: Duration
    /// From the end of the headers to the end of the body; then 408 and the connection closes.
    public var bodyTimeout: Duration
    /// A keep-alive connection with no request in progress is closed after this long.
    public var idleTimeout: Duration
    /// Open connections at most; one more gets 503 and is closed at once.
    public var maxConnections: Int

    public init(headerTimeout: Duration = .seconds(10), bodyTimeout: Duration = .seconds(30),
                idleTimeout: Duration = .seconds(60), maxConnections: Int = 256) {
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
    }
}

/// Every open client connection, so that a shutdown can close the ones still open when its
/// grace period ends (a client in the middle of sending a request would otherwise hold the
/// process up for as long as it likes).
final class ConnectionRegistry: Sendable {
    let limit: Int
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    init(limit: Int) { self.limit = limit }

    /// Adds a connection; false (and not added) when `limit` are already open.
    func add(_ channel: any Channel) -> Bool {
        channels.withLock { open in
            guard open.count < limit else { return false }
            open[ObjectIdentifier(channel)] = channel
            return true
        }
    }

    func remove(_ channel: any Channel) {
        _ = channels.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    var count: Int { channels.withLock { $0.count } }

    /// Closes every open connection (their requests see a disconnect and are cancelled).
    func closeAll() {
        for channel in channels.withLock({ Array($0.values) }) { channel.close(promise: nil) }
    }
}

/// The HTTP/1.1 child channel of Hummingbird with a ``ConnectionGuardHandler`` in front of it
/// and a ``RequestProgressHandler`` behind its request decoder.
struct GuardedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let http1: HTTP1Channel
    let limits: ConnectionLimits
    let registry: ConnectionRegistry

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let guardHandler = ConnectionGuardHandler(limits: limits, registry: registry, logger: logger)
        do {
            try channel.pipeline.syncOperations.addHandler(guardHandler)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return http1.setup(channel: channel, logger: logger).assumeIsolated().flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try pipeline.addHandler(RequestProgressHandler(guardHandler), position: .after(decoder))
            return value
        }.nonisolated()
    }

    func handle(value: Value, logger: Logger) async {
        await http1.handle(value: value, logger: logger)
    }
}

/// First in a connection's pipeline (it sees the raw bytes). It
/// - refuses a connection over ``ConnectionLimits/maxConnections`` with 503;
/// - closes the connection when the client closes its side (end of file): whatever the client
///   asked for is cancelled at once, queued or running, streamed or not, instead of being
///   generated for nobody (the server allows half-closed sockets, so without this only a reset
///   would be noticed);
/// - enforces the header, body and idle timeouts, told by ``RequestProgressHandler`` where
///   each request is.
final class ConnectionGuardHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private enum Expiry { case header, body, idle }

    private let limits: ConnectionLimits
    private let registry: ConnectionRegistry
    private let logger: Logger
    private var context: ChannelHandlerContext?
    private var registered = false
    private var refused = false

    // Where the connection is. Bytes arriving while no request is being read start a request
    // (the header timeout); the decoded head starts the body timeout; the decoded end stops it.
    private var awaitingHead = false
    private var readingBody = false
    private var currentResponseStarted = false
    /// The current request's client sent `Expect: 100-continue` and waits for `100 Continue`.
    private var continueAwaited = false
    private var openResponses = 0
    private var headStart = NIODeadline.now()
    private var bodyStart = NIODeadline.now()
    private var idleSince = NIODeadline.now()
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?

    init(limits: ConnectionLimits, registry: ConnectionRegistry, logger: Logger) {
        self.limits = limits
        self.registry = registry
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { activate(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stop(context)
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        activate(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop(context)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        if !readingBody && !awaitingHead {
            awaitingHead = true
            headStart = .now()
            reschedule()
        }
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            // The client has closed its side: it can no longer send a request, and nobody
            // waits for the answers. Closing cancels its requests (DisconnectWatch).
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func activate(_ context: ChannelHandlerContext) {
        guard !registered else { return }
        registered = true
        guard registry.add(context.channel) else {
            refused = true
            logger.notice("refusing a connection: \(registry.limit) are open (--max-connections)")
            send(APIError(status: .serviceUnavailable,
                          message: "Too many connections: \(registry.limit) are open. Retry later.",
                          type: "server_error", code: "too_many_connections"), context)
            return
        }
        idleSince = .now()
        reschedule()
    }

    private func stop(_ context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        timerDeadline = nil
        if registered && !refused { registry.remove(context.channel) }
    }

    // MARK: Told by RequestProgressHandler

    func requestHeadRead(expectsContinue: Bool) {
        awaitingHead = false
        readingBody = true
        currentResponseStarted = false
        continueAwaited = expectsContinue
        bodyStart = .now()
        openResponses += 1
        reschedule()
    }

    func requestEndRead() {
        readingBody = false
        continueAwaited = false  // the body came without the invitation
        reschedule()
    }

    func responseHeadWritten() {
        currentResponseStarted = true
        continueAwaited = false  // the final answer replaces the invitation
    }

    /// `100 Continue`, straight to the socket, if the current request's client waits for it and
    /// has no answer yet. A route calls this when it starts reading the body (`Routes.readBody`):
    /// a request refused on its headers alone (401, 413 by Content-Length, 415, 421, ...) is
    /// answered before the client sends a body it would send for nothing.
    func sendContinueIfAwaited() {
        guard continueAwaited, let context else { return }
        continueAwaited = false
        var buffer = context.channel.allocator.buffer(capacity: 32)
        buffer.writeString("HTTP/1.1 100 Continue\r\n\r\n")
        context.writeAndFlush(NIOAny(buffer), promise: nil)
    }

    func responseEndWritten() {
        openResponses = max(0, openResponses - 1)
        if openResponses == 0 { idleSince = .now() }
        reschedule()
    }

    // MARK: Timeouts

    private var nextExpiry: (NIODeadline, Expiry)? {
        if readingBody { return (bodyStart + TimeAmount(limits.bodyTimeout), .body) }
        if awaitingHead { return (headStart + TimeAmount(limits.headerTimeout), .header) }
        if openResponses > 0 { return nil }  // generating: no limit but the client's patience
        return (idleSince + TimeAmount(limits.idleTimeout), .idle)
    }

    private func reschedule() {
        guard let context, registered, !refused else { return }
        let next = nextExpiry
        guard next?.0 != timerDeadline else { return }
        timer?.cancel()
        timer = nil
        timerDeadline = next?.0
        guard let (deadline, _) = next else { return }
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in expire() }
    }

    private func expire() {
        timer = nil
        timerDeadline = nil
        guard let context, let (deadline, expiry) = nextExpiry else { return }
        guard deadline <= .now() else {
            reschedule()
            return
        }
        switch expiry {
        case .header:
            logger.info("closing a connection: no complete request headers within \(limits.headerTimeout)")
            send(APIError(status: .requestTimeout, message: "The request headers took too long to arrive",
                          code: "request_timeout"), context)
        case .body:
            logger.info("closing a connection: the request body did not arrive within \(limits.bodyTimeout)")
            if currentResponseStarted {
                context.close(promise: nil)
            } else {
                send(APIError(status: .requestTimeout, message: "The request body took too long to arrive",
                              code: "request_timeout"), context)
            }
        case .idle:
            logger.debug("closing an idle connection after \(limits.idleTimeout)")
            context.close(promise: nil)
        }
    }

    /// Writes `error` as a complete HTTP/1.1 response straight to the socket, then closes.
    private func send(_ error: APIError, _ context: ChannelHandlerContext) {
        let body = error.jsonData
        var buffer = context.channel.allocator.buffer(capacity: body.count + 160)
        buffer.writeString("HTTP/1.1 \(error.status.code) \(error.status.reasonPhrase)\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n")
        buffer.writeBytes(body)
        context.writeAndFlush(NIOAny(buffer), promise: nil)
        context.close(promise: nil)
    }
}

/// Behind the HTTP request decoder: tells the ``ConnectionGuardHandler`` when each request's
/// head and end have been read and each response's head and end written.
final class RequestProgressHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let guardHandler: ConnectionGuardHandler

    init(_ guardHandler: ConnectionGuardHandler) { self.guardHandler = guardHandler }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            // A client that sends `Expect: 100-continue` waits for `100 Continue` before its
            // body: sent once a route asks for the body (sendContinueIfAwaited).
            guardHandler.requestHeadRead(expectsContinue: head.version == .http1_1
                && head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }))
        case .body: break
        case .end: guardHandler.requestEndRead()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200: guardHandler.responseHeadWritten()
        case .end: guardHandler.responseEndWritten()
        default: break
        }
        context.write(data, promise: promise)
    }
}
