import Foundation
import GemmaTiny

/// Carries a generation stream's events from the task that reads the stream to the C thread
/// that called gt_generate, which waits here and runs the callback itself.
final class EventQueue: @unchecked Sendable {
    enum Item {
        /// A chunk's text (maybe empty) and how many tokens it came from.
        case text(String, tokens: Int)
        case finished(GenerationSummary)
        case failed(any Error)
        /// The stream has ended (after `finished` or `failed`, or by itself).
        case ended
        /// Nothing new: look at the session's cancel flag (gt_session_cancel).
        case wake
    }

    private let condition = NSCondition()
    private var items: [Item] = []

    func push(_ item: Item) {
        condition.lock()
        items.append(item)
        condition.signal()
        condition.unlock()
    }

    /// Waits until there is something, then takes everything there is.
    func take() -> [Item] {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty { condition.wait() }
        let taken = items
        items.removeAll(keepingCapacity: true)
        return taken
    }

    /// Reads `stream` to its end into the queue (run by a task of its own).
    func pump(_ stream: AsyncThrowingStream<GenerationEvent, any Error>) async {
        do {
            for try await event in stream {
                switch event {
                case .chunk(let chunk):
                    push(.text(chunk.text, tokens: chunk.tokens.count))
                case .finished(let summary):
                    push(.finished(summary))
                }
            }
        } catch {
            push(.failed(error))
        }
        push(.ended)
    }
}
