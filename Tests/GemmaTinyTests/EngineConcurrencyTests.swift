import Foundation
@_spi(Testing) @testable import GemmaTiny
import Synchronization
import XCTest

/// Cancellation, scheduling and thread safety of the engine. Run under ThreadSanitizer in CI:
///
///     swift test --scratch-path .build-tsan --sanitize=thread --filter Engine
final class EngineConcurrencyTests: XCTestCase {
    var golden: Golden!

    override func setUpWithError() throws {
        golden = try Golden.load("tiny-gemma")
    }

    func prompt(_ name: String) -> Golden.Prompt { golden.prompts.first { $0.name == name }! }

    /// Cancelling the consuming task stops the generation within one token of the request and
    /// frees the session at once.
    func testEngineCancellingConsumerTaskStopsWithinOneTokenAndFreesSession() async throws {
        // f32 cache: compared with the transformers goldens token for token, which an f16 cache may flip at a near-tie.
        let engine = try EngineFixtures.engine(stepDelay: .milliseconds(2), cacheType: .f32)
        let session = try engine.makeSession()
        let p = prompt("short")
        let received = Counter()
        let consumer = Task {
            for try await event in session.generate(tokens: p.ids, options: EngineFixtures.greedy(nil)) {
                if case .chunk = event { received.add() }
            }
        }
        let started = await EngineFixtures.wait { received.value >= 3 }
        XCTAssertTrue(started)
        consumer.cancel()
        _ = try? await consumer.value
        let stopped = await EngineFixtures.wait { engine.stats.runningGenerations == 0 }
        XCTAssertTrue(stopped, "the generation did not stop")
        let log = engine.scheduler.recentCancellations
        XCTAssertEqual(log.count, 1)
        if let entry = log.first {
            XCTAssertLessThanOrEqual(entry.atEnd - entry.atRequest, 1, "tokens generated after cancellation: \(entry)")
            XCTAssertLessThan(entry.atEnd, 500, "it ran to the end of the context")
        }
        XCTAssertEqual(engine.stats.cancelledGenerations, 1)

        // The session is free: a new request runs at once and gives the reference reply.
        let next = try await session.completion(tokens: p.ids, options: EngineFixtures.greedy(24))
        XCTAssertEqual(next.summary.generatedTokens, p.greedyIds)
        XCTAssertLessThan(next.summary.queueSeconds, 1)
    }

    /// Breaking out of the loop (dropping the stream) cancels too.
    func testEngineDroppingStreamCancelsGeneration() async throws {
        let engine = try EngineFixtures.engine(stepDelay: .milliseconds(1))
        let session = try engine.makeSession()
        var count = 0
        for try await event in session.generate(prompt: "The cat sat.", options: EngineFixtures.greedy(nil)) {
            if case .chunk = event { count += 1 }
            if count == 2 { break }
        }
        let stopped = await EngineFixtures.wait { engine.stats.runningGenerations == 0 }
        XCTAssertTrue(stopped)
        XCTAssertEqual(engine.stats.cancelledGenerations, 1)
        let ok = try await session.completion(prompt: "The cat sat.", options: EngineFixtures.greedy(2))
        XCTAssertEqual(ok.summary.generatedTokens.count, 2)
    }

    /// `session.cancel()` from elsewhere ends the running generation with a `.cancelled` summary
    /// and cancels the session's queued ones.
    func testEngineSessionCancelEndsWithCancelledSummary() async throws {
        let engine = try EngineFixtures.engine(stepDelay: .milliseconds(2))
        let session = try engine.makeSession()
        let first = session.generate(prompt: "The cat sat.", options: EngineFixtures.greedy(nil))
        let second = session.generate(prompt: "Hello", options: EngineFixtures.greedy(nil))
        let consumer = Task { try await EngineFixtures.collect(first) }
        let running = await EngineFixtures.wait { engine.stats.generatedTokens > 0 || engine.stats.runningGenerations == 1 }
        XCTAssertTrue(running)
        try await Task.sleep(for: .milliseconds(20))
        session.cancel()
        let a = try await consumer.value
        let b = try await EngineFixtures.collect(second)
        XCTAssertEqual(a.summary?.stopReason, .cancelled)
        XCTAssertEqual(b.summary?.stopReason, .cancelled)
        XCTAssertEqual(b.summary?.generatedTokens, [])
        XCTAssertEqual(a.text, engine.tokenizer.decode(a.summary?.generatedTokens ?? []))
    }

    /// `cancel()` and `cancelAll()` stop generations, not a `reset()` or `cachedTokenCount()`
    /// queued behind them: those still run, after (they used to be dropped: the reset returned
    /// with the cache still full, the count came back 0).
    func testEngineCancelLeavesQueuedSessionTasks() async throws {
        let engine = try EngineFixtures.engine(stepDelay: .milliseconds(20))
        let session = try engine.makeSession()
        _ = try await session.completion(prompt: "The cat sat.", options: EngineFixtures.greedy(3))

        // session.cancel() with a reset queued behind the generation.
        let first = session.generate(prompt: "The cat sat on the mat", options: EngineFixtures.greedy(50))
        let consumer = Task { try await EngineFixtures.collect(first) }
        let reset = Task { await session.reset() }
        try await Task.sleep(for: .milliseconds(100))  // the reset is queued by now
        session.cancel()
        var ended = try await consumer.value
        XCTAssertEqual(ended.summary?.stopReason, .cancelled)
        await reset.value
        let afterReset = await session.cachedTokenCount()
        XCTAssertEqual(afterReset, 0, "the queued reset ran")

        // engine.cancelAll() with a cache count queued behind the generation.
        let second = session.generate(prompt: "The cat sat on the mat", options: EngineFixtures.greedy(50))
        let secondConsumer = Task { try await EngineFixtures.collect(second) }
        let count = Task { await session.cachedTokenCount() }
        try await Task.sleep(for: .milliseconds(100))
        engine.cancelAll()
        ended = try await secondConsumer.value
        XCTAssertEqual(ended.summary?.stopReason, .cancelled)
        let counted = await count.value
        let now = await session.cachedTokenCount()
        XCTAssertGreaterThan(counted, 0)
        XCTAssertEqual(counted, now, "the queued count ran, after the cancelled generation")
    }

    /// Sessions used from many tasks at once give exactly what each gives alone.
    func testEngineConcurrentSessionsMatchSequentialResults() async throws {
        let kernels = ExclusiveCheckingKernels(inner: makeDefaultKernels(threads: 2))
        let engine = try EngineFixtures.engine(maxConcurrent: 3, chunk: 3, kernels: kernels)
        let prompts = golden.prompts.map(\.ids)
        let sampled = GenerationOptions(maxTokens: 20, sampling: SamplingOptions(temperature: 0.9, seed: 7),
                                        stopAtEndOfSequence: false)

        var expected: [[Int]] = []
        for ids in prompts {
            let c = try await engine.makeSession(contextLength: 128).completion(tokens: ids, options: sampled)
            expected.append(c.summary.generatedTokens)
        }
        let sessions = try prompts.map { _ in try engine.makeSession(contextLength: 128) }
        let results = try await withThrowingTaskGroup(of: (Int, [Int], [Int]).self) { group in
            for (i, ids) in prompts.enumerated() {
                // Two requests per session, from different tasks.
                group.addTask {
                    let c = try await sessions[i].completion(tokens: ids, options: sampled)
                    return (i, c.summary.generatedTokens, [])
                }
                group.addTask {
                    let c = try await sessions[i].completion(tokens: ids, options: sampled)
                    return (i, [], c.summary.generatedTokens)
                }
            }
            var out = [[Int]](repeating: [], count: prompts.count * 2)
            for try await (i, a, b) in group {
                if !a.isEmpty { out[2 * i] = a }
                if !b.isEmpty { out[2 * i + 1] = b }
            }
            return out
        }
        for i in prompts.indices {
            XCTAssertEqual(results[2 * i], expected[i], "prompt \(i)")
            XCTAssertEqual(results[2 * i + 1], expected[i], "prompt \(i), second request")
        }
        XCTAssertEqual(kernels.overlaps, 0, "two matrix products ran at once")
        XCTAssertEqual(kernels.threadNames, ["gemma-compute"])
        XCTAssertEqual(kernels.threadCount, 1, "products ran on several threads")
        XCTAssertGreaterThan(kernels.callCount, 0)
    }

    /// Active generations take turns one step at a time.
    func testEngineInterleavesGenerationsRoundRobin() async throws {
        let engine = try EngineFixtures.engine(maxConcurrent: 4, chunk: 64, stepDelay: .milliseconds(1))
        engine.scheduler.startTracingSteps()
        let a = try engine.makeSession(), b = try engine.makeSession(), c = try engine.makeSession()
        let p = prompt("short").ids
        async let ra = a.completion(tokens: p, options: EngineFixtures.greedy(30))
        async let rb = b.completion(tokens: p, options: EngineFixtures.greedy(30))
        async let rc = c.completion(tokens: p, options: EngineFixtures.greedy(30))
        let results = try await [ra, rb, rc]
        XCTAssertTrue(results.allSatisfy { $0.summary.generatedTokens == results[0].summary.generatedTokens })
        let trace = engine.scheduler.tracedSteps
        XCTAssertEqual(Set(trace).count, 3)
        // While all three are running, no job steps twice before the others had a turn.
        let firsts = Set(trace).map { id in trace.firstIndex(of: id)! }
        let lasts = Set(trace).map { id in trace.lastIndex(of: id)! }
        let window = trace[firsts.max()!...lasts.min()!]
        XCTAssertGreaterThan(window.count, 30)
        for i in window.indices.dropFirst() { XCTAssertNotEqual(trace[i], trace[i - 1], "step \(i): \(trace)") }
        for i in window.indices.dropFirst(2) {
            XCTAssertEqual(Set(trace[(i - 2)...i]).count, 3, "round-robin broken at step \(i)")
        }
    }

    /// With one slot, generations run first come, first served; a session's requests run in order.
    func testEngineSingleSlotIsFirstComeFirstServed() async throws {
        let engine = try EngineFixtures.engine(maxConcurrent: 1, stepDelay: .milliseconds(1))
        engine.scheduler.startTracingSteps()
        let a = try engine.makeSession(), b = try engine.makeSession()
        let p = prompt("short").ids
        let sa = a.generate(tokens: p, options: EngineFixtures.greedy(10))
        let sb = b.generate(tokens: p, options: EngineFixtures.greedy(10))
        let sa2 = a.generate(tokens: p, options: EngineFixtures.greedy(10))
        XCTAssertEqual(engine.stats.waitingGenerations + engine.stats.runningGenerations, 3)
        async let ca = EngineFixtures.collect(sa)
        async let cb = EngineFixtures.collect(sb)
        async let ca2 = EngineFixtures.collect(sa2)
        let (ra, rb, ra2) = try await (ca, cb, ca2)
        XCTAssertEqual(ra.summary?.generatedTokens, rb.summary?.generatedTokens)
        XCTAssertEqual(ra2.summary?.generatedTokens, ra.summary?.generatedTokens)
        XCTAssertGreaterThan(rb.summary?.queueSeconds ?? 0, 0.005)
        let trace = engine.scheduler.tracedSteps
        // Three contiguous runs, in submission order.
        var runs: [UInt64] = []
        for id in trace where runs.last != id { runs.append(id) }
        XCTAssertEqual(runs.count, 3, "\(trace)")
        XCTAssertEqual(runs, runs.sorted())
    }

    /// Shutdown ends running and queued generations with `.shutDown` and refuses new work.
    func testEngineShutdownEndsGenerationsAndRefusesNewWork() async throws {
        let engine = try EngineFixtures.engine(maxConcurrent: 1, stepDelay: .milliseconds(2))
        let session = try engine.makeSession()
        let running = session.generate(prompt: "The cat sat.", options: EngineFixtures.greedy(nil))
        let queued = try engine.makeSession().generate(prompt: "Hello", options: EngineFixtures.greedy(nil))
        let started = await EngineFixtures.wait { engine.stats.runningGenerations == 1 }
        XCTAssertTrue(started)
        await engine.shutdown()
        let e1 = await EngineFixtures.error(of: running)
        let e2 = await EngineFixtures.error(of: queued)
        XCTAssertEqual(e1, .shutDown)
        XCTAssertEqual(e2, .shutDown)
        let e3 = await EngineFixtures.error(of: session.generate(prompt: "x"))
        XCTAssertEqual(e3, .shutDown)
        XCTAssertThrowsError(try engine.makeSession()) { XCTAssertEqual($0 as? EngineError, .shutDown) }
        await session.reset()  // returns, does nothing
    }

    /// Many short requests from many tasks, some cancelled at random points: nothing hangs or
    /// crashes, every non-cancelled one completes, and the engine ends idle.
    func testEngineStressWithRandomCancellation() async throws {
        let engine = try EngineFixtures.engine(maxConcurrent: 3, chunk: 2)
        let sessions = try (0..<4).map { _ in try engine.makeSession(contextLength: 64) }
        let completed = Counter()
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<24 {
                group.addTask {
                    let s = sessions[i % sessions.count]
                    let task = Task { try await s.completion(prompt: "request \(i) says hello", options: EngineFixtures.greedy(6)) }
                    if i % 3 == 0 {
                        try? await Task.sleep(for: .microseconds(200 * (i % 5)))
                        task.cancel()
                    }
                    if (try? await task.value) != nil { completed.add() }
                }
            }
        }
        XCTAssertGreaterThanOrEqual(completed.value, 16)
        let idle = await EngineFixtures.wait { engine.stats.runningGenerations == 0 && engine.stats.waitingGenerations == 0 }
        XCTAssertTrue(idle)
        let s = engine.stats
        XCTAssertEqual(s.completedGenerations + s.cancelledGenerations, 24)
    }
}
