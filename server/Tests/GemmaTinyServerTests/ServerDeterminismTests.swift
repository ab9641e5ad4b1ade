import Foundation
@_spi(Testing) import GemmaTiny
import XCTest

/// Over HTTP too, a sampled reply with a seed is the same whether the server is otherwise idle
/// or generating seven other streams at the same time.
final class ServerDeterminismTests: XCTestCase {
    static var completionBody: [String: Any] { ["prompt": "The cat sat.", "max_tokens": 24, "temperature": 0.9,
                                                "top_p": 1, "top_k": 0, "min_p": 0, "seed": 4321] }
    static var chatBody: [String: Any] { ["messages": [["role": "user", "content": "Write a short poem about the sea."]],
                                          "max_tokens": 24, "temperature": 1.0, "top_k": 0, "min_p": 0, "seed": 99,
                                          "stream": true] }

    func completionText(_ r: TestServer.Reply) -> String? {
        (r.json["choices"] as? [[String: Any]])?.first?["text"] as? String
    }

    func streamedChatText(_ r: TestServer.Reply) -> String {
        sseEvents(r.body).dropLast().map(jsonObject).compactMap {
            (($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String
        }.joined()
    }

    func testServerSeededSampledReplyIsTheSameAloneAndWhileSevenOthersStream() async throws {
        // Alone, on a server of its own (so that no slot's cache is shared with the loaded run).
        let quiet = try await TestServer.start(parallel: 8)
        let aloneCompletion = try await quiet.post("/v1/completions", json: Self.completionBody)
        let aloneChat = try await quiet.post("/v1/chat/completions", json: Self.chatBody)
        var greedyBody = Self.completionBody
        greedyBody["temperature"] = 0
        let greedy = try await quiet.post("/v1/completions", json: greedyBody)
        try await quiet.stop()
        let expectedCompletion = try XCTUnwrap(completionText(aloneCompletion), aloneCompletion.body)
        let expectedChat = streamedChatText(aloneChat)
        XCTAssertFalse(expectedChat.isEmpty, aloneChat.body)
        XCTAssertNotEqual(completionText(greedy), expectedCompletion, "the reply is sampled, not greedy")

        // Seven long streams (sampled, other seeds) hold seven of the eight slots.
        let server = try await TestServer.start(parallel: 8)
        var streams: [RawConnection] = []
        for i in 0..<7 {
            let c = try RawConnection(port: server.address.port!)
            c.send(path: "/v1/completions",
                   body: #"{"prompt":"Once upon a time \#(i)","max_tokens":2000,"temperature":1.2,"min_p":0,"seed":\#(i),"stream":true}"#)
            XCTAssertTrue(c.read { $0.contains("data: ") }, c.received)
            streams.append(c)
        }
        func busySlots() async throws -> Int? {
            ((try await server.get("/health")).json["slots"] as? [String: Any])?["busy"] as? Int
        }
        let busyBefore = try await busySlots()
        XCTAssertEqual(busyBefore, 7)

        let loadedCompletion = try await server.post("/v1/completions", json: Self.completionBody)
        let loadedChat = try await server.post("/v1/chat/completions", json: Self.chatBody)
        XCTAssertEqual(completionText(loadedCompletion), expectedCompletion)
        XCTAssertEqual(streamedChatText(loadedChat), expectedChat)
        let busyAfter = try await busySlots()
        XCTAssertEqual(busyAfter, 7, "the seven streams were still generating")

        for c in streams { c.close() }
        try await server.stop()
    }
}
