import Foundation
@_spi(Testing) @testable import GemmaTiny
import Synchronization
import XCTest

/// Helpers for the engine tests: engines over the tiny fixture model, stream collection.
enum EngineFixtures {
    static func model() throws -> GemmaModel { try ModelFixtures.model("tiny-gemma", .bf16) }

    /// `cacheType`: the engine's default (f16) unless a test compares with the transformers
    /// goldens token for token, which pins `.f32` (the exact cache the goldens were checked with).
    static func engine(maxConcurrent: Int = 4, chunk: Int = 16, stepDelay: Duration = .zero,
                       kernels: (any MatmulKernels)? = nil, context: Int? = nil,
                       cacheType: KVCacheType = .default) throws -> GemmaEngine {
        var options = GemmaEngine.Options(kernels: kernels ?? makeDefaultKernels(threads: 1), contextLength: context, maxConcurrentGenerations: maxConcurrent,
                                          prefillChunkSize: chunk, name: "tiny", cacheType: cacheType)
        options.stepDelay = stepDelay
        return try GemmaEngine(model: model(), options: options)
    }

    struct Collected {
        var chunks: [TextChunk] = []
        var summary: GenerationSummary?
        var text: String { chunks.map(\.text).joined() }
        var chunkTokens: [Int] { chunks.flatMap(\.tokens) }
    }

    static func collect(_ stream: AsyncThrowingStream<GenerationEvent, any Error>) async throws -> Collected {
        var c = Collected()
        for try await event in stream {
            switch event {
            case .chunk(let chunk): c.chunks.append(chunk)
            case .finished(let s):
                XCTAssertNil(c.summary, "two summaries")
                c.summary = s
            }
        }
        return c
    }

    /// The error a stream ends with (nil if it ends normally).
    static func error(of stream: AsyncThrowingStream<GenerationEvent, any Error>) async -> EngineError? {
        do {
            for try await _ in stream {}
            return nil
        } catch let e as EngineError {
            return e
        } catch {
            XCTFail("unexpected error type: \(error)")
            return nil
        }
    }

    /// Polls `condition` until it holds or `seconds` pass.
    static func wait(seconds: Double = 10, _ condition: () -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return condition()
    }

    static func greedy(_ n: Int?, ignoreEos: Bool = true) -> GenerationOptions {
        var o = GenerationOptions.greedy(maxTokens: n)
        o.stopAtEndOfSequence = !ignoreEos
        return o
    }
}

/// Kernels that check the engine's promise: never two products at once, always on one thread.
final class ExclusiveCheckingKernels: MatmulKernels, @unchecked Sendable {
    let inner: any MatmulKernels
    private let active = Atomic<Int>(0)
    private let overlap = Atomic<Int>(0)
    private let calls = Atomic<Int>(0)
    private let threads = Mutex<Set<String>>([])
    private let threadIds = Mutex<Set<UInt>>([])

    init(inner: any MatmulKernels) { self.inner = inner }

    var name: String { "checking(\(inner.name))" }
    var overlaps: Int { overlap.load(ordering: .relaxed) }
    var callCount: Int { calls.load(ordering: .relaxed) }
    var threadNames: Set<String> { threads.withLock { $0 } }
    var threadCount: Int { threadIds.withLock { $0.count } }

    private func enter() {
        if active.wrappingAdd(1, ordering: .acquiringAndReleasing).newValue > 1 { overlap.wrappingAdd(1, ordering: .relaxed) }
        let me = UInt(pthread_self())
        threadIds.withLock { _ = $0.insert(me) }
        if calls.wrappingAdd(1, ordering: .relaxed).newValue % 50 == 1 {
            // The kernel's name for the thread (what ps shows).
            let comm = try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)
            let name = comm?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            threads.withLock { _ = $0.insert(name) }
        }
    }

    private func leave() { active.wrappingSubtract(1, ordering: .acquiringAndReleasing) }

    func matvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        enter()
        defer { leave() }
        inner.matvec(w, x, y)
    }

    func matmul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, xStride: Int, _ y: UnsafeMutablePointer<Float>,
                yStride: Int, count: Int) {
        enter()
        defer { leave() }
        inner.matmul(w, x, xStride: xStride, y, yStride: yStride, count: count)
    }
}

/// A counter tasks can share.
final class Counter: Sendable {
    private let count = Atomic<Int>(0)
    func add() { count.wrappingAdd(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}
