import GemmaTiny
import Synchronization

/// The server's generation slots: up to `capacity` engine sessions, each serving one request at
/// a time. Requests that find every slot busy wait in a FIFO queue of at most `maxQueue`; one
/// more is refused (429).
///
/// A free slot is chosen by the longest common prefix between the new prompt and the tokens the
/// slot last ran, so the next turn of a conversation (or a shared system prompt) lands on the
/// session whose KV cache already holds it.
final class SessionPool: Sendable {
    let engine: GemmaEngine
    let capacity: Int
    let maxQueue: Int
    let contextLength: Int?

    struct Slot: Sendable {
        let session: GemmaSession
        /// What the session's cache holds, as far as the pool knows (prompt + reply it last ran).
        var tokens: [Int]
    }

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Slot, any Error>
    }

    private struct State {
        var idle: [Slot] = []
        var created = 0
        var busy = 0
        var waiters: [Waiter] = []
        var cancelledWaiters = Set<UInt64>()
        var nextId: UInt64 = 0
    }

    private let state = Mutex(State())

    init(engine: GemmaEngine, capacity: Int, maxQueue: Int, contextLength: Int? = nil) {
        self.engine = engine
        self.capacity = max(1, capacity)
        self.maxQueue = max(0, maxQueue)
        self.contextLength = contextLength
    }

    /// Requests holding a slot, and requests waiting for one.
    var load: (busy: Int, waiting: Int) {
        state.withLock { ($0.busy, $0.waiters.count) }
    }

    private enum Decision {
        case reuse(Slot)
        case create
        case wait(UInt64)
        case full
    }

    /// A slot for `prompt`: at once when one is free, else after waiting in the queue.
    ///
    /// - Throws: `APIError.queueFull` when `maxQueue` requests already wait; `CancellationError`
    ///   when the task is cancelled while waiting.
    func acquire(prompt: [Int]) async throws -> Lease {
        let decision: Decision = state.withLock { s in
            if !s.idle.isEmpty {
                var best = 0, bestLength = -1
                for (i, slot) in s.idle.enumerated() {
                    let n = commonPrefixLength(slot.tokens, prompt)
                    if n > bestLength { (best, bestLength) = (i, n) }
                }
                s.busy += 1
                return .reuse(s.idle.remove(at: best))
            }
            if s.created < capacity {
                s.created += 1
                s.busy += 1
                return .create
            }
            guard s.waiters.count < maxQueue else { return .full }
            s.nextId += 1
            return .wait(s.nextId)
        }
        switch decision {
        case .reuse(let slot):
            return Lease(pool: self, slot: slot)
        case .create:
            do {
                let session = try engine.makeSession(contextLength: contextLength)
                return Lease(pool: self, slot: Slot(session: session, tokens: []))
            } catch {
                state.withLock { s in
                    s.created -= 1
                    s.busy -= 1
                }
                throw APIError.from(error, param: "messages")
            }
        case .full:
            throw APIError.queueFull(limit: maxQueue)
        case .wait(let id):
            let slot = try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (c: CheckedContinuation<Slot, any Error>) in
                    let cancelled = state.withLock { s in
                        if s.cancelledWaiters.remove(id) != nil { return true }
                        s.waiters.append(Waiter(id: id, continuation: c))
                        return false
                    }
                    if cancelled { c.resume(throwing: CancellationError()) }
                }
            } onCancel: {
                let waiter: Waiter? = state.withLock { s in
                    if let i = s.waiters.firstIndex(where: { $0.id == id }) { return s.waiters.remove(at: i) }
                    s.cancelledWaiters.insert(id)
                    return nil
                }
                waiter?.continuation.resume(throwing: CancellationError())
            }
            return Lease(pool: self, slot: slot)
        }
    }

    /// Gives a slot back: to the first waiter, or to the idle list.
    fileprivate func release(_ slot: Slot) {
        let waiter: Waiter? = state.withLock { s in
            if !s.waiters.isEmpty { return s.waiters.removeFirst() }
            s.busy -= 1
            s.idle.append(slot)
            return nil
        }
        waiter?.continuation.resume(returning: slot)
    }

    private func commonPrefixLength(_ a: [Int], _ b: [Int]) -> Int {
        var n = 0
        let limit = min(a.count, b.count)
        while n < limit && a[n] == b[n] { n += 1 }
        return n
    }
}

/// One request's hold on a slot. Released exactly once: explicitly with what the session now
/// caches, or, if a code path forgets, when the lease is freed.
final class Lease: Sendable {
    let pool: SessionPool
    let session: GemmaSession
    private let slot: Mutex<SessionPool.Slot?>

    fileprivate init(pool: SessionPool, slot: SessionPool.Slot) {
        self.pool = pool
        session = slot.session
        self.slot = Mutex(slot)
    }

    /// Returns the slot; `cachedTokens` is what the session ran (nil: unknown, e.g. after an error).
    func release(cachedTokens: [Int]?) {
        guard var s = slot.withLock({ s -> SessionPool.Slot? in defer { s = nil }; return s }) else { return }
        s.tokens = cachedTokens ?? []
        pool.release(s)
    }

    deinit {
        release(cachedTokens: nil)
    }
}
