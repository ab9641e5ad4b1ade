import Foundation
import Synchronization
import XCTest

/// `gemma-tiny serve` as a separate process (so that its memory is measured alone) under 300
/// requests from 8 clients at once, on loopback with the tiny fixture model: chat and
/// completions, streamed and not, with clients that go away mid-stream or before their reply.
final class ServerLoadTests: XCTestCase {
    static let requestCount = 300
    static let warmUpCount = 30
    static let clients = 8
    /// Allowed growth of the server's resident memory from after the warm-up to the end.
    static let rssGrowthLimit = 8 << 20

    enum Outcome: Sendable {
        case completed(ReplyValidation.Result)
        case disconnected(midStream: Bool)
        case failed(String)
    }

    func testServerUnderLoadWithRandomDisconnectsStaysWellFormedAndMemoryStable() async throws {
        let model = try ServerFixtures.model().file.path
        let serve = try ServeCommandTests.ServeProcess(["-m", model, "--port", "0", "-t", "1", "--parallel", "4",
                                                        "--max-queue", "16"])
        defer { if serve.process.isRunning { serve.process.terminate() } }
        let address = await serve.waitForAddress()
        let port = try XCTUnwrap(address.flatMap { $0.split(separator: ":").last }.flatMap { Int($0) }, serve.stderr)
        let pid = serve.process.processIdentifier
        let plan = LoadPlan.make(count: Self.requestCount, seed: 20_261_128, maxTokens: 8...64)

        let start = Date()
        var results = try await Self.run(plan[..<Self.warmUpCount], port: port)
        try await Self.waitUntilIdle(port: port)
        let rssAfterWarmUp = try XCTUnwrap(residentBytes(pid: pid))
        results += try await Self.run(plan[Self.warmUpCount...], port: port)
        try await Self.waitUntilIdle(port: port)
        let rssAtEnd = try XCTUnwrap(residentBytes(pid: pid))
        let seconds = Date().timeIntervalSince(start)

        var completed = 0, midStream = 0, beforeReply = 0, errors = 0
        var textsByKey: [String: Set<String>] = [:]
        for (request, outcome) in results {
            switch outcome {
            case .completed(let r):
                completed += 1
                if r.problems.isEmpty {
                    textsByKey[request.replyKey, default: []].insert(r.text)
                } else {
                    errors += 1
                    XCTFail("request \(request.index) \(request.body): \(r.problems.joined(separator: "; "))")
                }
            case .disconnected(let mid):
                if mid { midStream += 1 } else { beforeReply += 1 }
            case .failed(let why):
                errors += 1
                XCTFail("request \(request.index): \(why)")
            }
        }
        let health = try await HTTPTestClient.request(port: port, method: "GET", path: "/health")
        let generations = health.json["generations"] as? [String: Any] ?? [:]
        let mib = { (bytes: Int) in String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
        print("server load test: \(Self.requestCount) requests at concurrency \(Self.clients), "
              + "\(plan.filter(\.stream).count) streamed; completed \(completed), disconnected \(midStream + beforeReply) "
              + "(\(midStream) mid-stream, \(beforeReply) before the reply; the server cancelled "
              + "\(generations["cancelled"] as? Int ?? -1) generations), errors \(errors), "
              + String(format: "%.1f s", seconds) + "; server RSS after \(Self.warmUpCount) warm-up requests "
              + "\(mib(rssAfterWarmUp)), at end \(mib(rssAtEnd)) (\(rssAtEnd >= rssAfterWarmUp ? "+" : "-")"
              + "\(mib(abs(rssAtEnd - rssAfterWarmUp))))")

        XCTAssertEqual(results.count, Self.requestCount)
        XCTAssertEqual(errors, 0)
        XCTAssertGreaterThan(midStream, 0, "the plan drops some streams")
        XCTAssertGreaterThan(completed, Self.requestCount * 3 / 4)
        // Equal requests (greedy, or sampled with the same seed) got equal text, streamed or not.
        for (key, texts) in textsByKey where texts.count > 1 {
            XCTFail("\(texts.count) different replies to \(key): \(texts)")
        }
        XCTAssertLessThan(rssAtEnd - rssAfterWarmUp, Self.rssGrowthLimit, "resident memory grew")

        // Still serving, nothing failed inside; then a clean shutdown.
        XCTAssertTrue(serve.process.isRunning, serve.stderr)
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(health.json["status"] as? String, "ok")
        XCTAssertEqual(generations["failed"] as? Int, 0, health.body)
        kill(pid, SIGTERM)
        let status = await serve.waitForExit()
        XCTAssertEqual(status, 0, serve.stderr)
    }

    /// Runs `requests` from `clients` threads, each taking the next request when it is done.
    static func run(_ requests: ArraySlice<LoadRequest>, port: Int) async throws -> [(LoadRequest, Outcome)] {
        let queue = RequestQueue(requests)
        return try await withThrowingTaskGroup(of: [(LoadRequest, Outcome)].self) { group in
            for _ in 0..<clients {
                group.addTask {
                    try await HTTPTestClient.onThread {
                        var done: [(LoadRequest, Outcome)] = []
                        while let request = queue.next() {
                            done.append((request, execute(request, port: port)))
                        }
                        return done
                    }
                }
            }
            var all: [(LoadRequest, Outcome)] = []
            for try await part in group { all += part }
            return all.sorted { $0.0.index < $1.0.index }
        }
    }

    /// One request on its own connection, as its client behaves.
    static func execute(_ request: LoadRequest, port: Int) -> Outcome {
        do {
            let c = try RawConnection(port: port)
            defer { c.close() }
            c.send(path: request.path, body: request.body, close: true)
            switch request.client {
            case .dropsBeforeReply:
                return .disconnected(midStream: false)
            case .dropsAfterEvents(let n):
                let done = "data: [DONE]"
                let reached = c.read { $0.components(separatedBy: "data: ").count - 1 >= n || $0.contains(done) }
                if reached && !c.received.contains(done) { return .disconnected(midStream: true) }
                c.read { _ in false }  // the stream ended first: read it all
            case .reads:
                c.read { _ in false }
            }
            let reply = try HTTPTestClient.parse(c.received)
            return .completed(request.stream
                ? ReplyValidation.stream(reply, kind: request.kind, maxTokens: request.maxTokens)
                : ReplyValidation.json(reply, kind: request.kind, maxTokens: request.maxTokens))
        } catch {
            return .failed("\(error)")
        }
    }

    /// Waits until no request holds or waits for a slot (disconnected ones included).
    static func waitUntilIdle(port: Int) async throws {
        let idle = try await eventually(seconds: 30) {
            let h = try await HTTPTestClient.request(port: port, method: "GET", path: "/health")
            return (h.json["slots"] as? [String: Any])?["busy"] as? Int == 0
                && (h.json["queue"] as? [String: Any])?["waiting"] as? Int == 0
        }
        if !idle { throw TestFailure("the server did not become idle") }
    }
}

/// Requests shared by the client threads, handed out in order.
final class RequestQueue: Sendable {
    private let remaining: Mutex<ArraySlice<LoadRequest>>
    init(_ requests: ArraySlice<LoadRequest>) { remaining = Mutex(requests) }
    func next() -> LoadRequest? { remaining.withLock { $0.popFirst() } }
}

/// Resident memory of process `pid` (VmRSS in /proc/PID/status), in bytes.
func residentBytes(pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
    }
    return nil
}
