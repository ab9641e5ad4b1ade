import CGemmaTiny
import GemmaTiny

@_cdecl("gt_generate")
public func gt_generate_impl(_ session: OpaquePointer?, _ prompt: UnsafePointer<CChar>?,
                             _ options: UnsafePointer<gt_options>?, _ callback: gt_callback?,
                             _ userData: UnsafeMutableRawPointer?,
                             _ error: UnsafeMutablePointer<OpaquePointer?>?) -> gt_status {
    reporting(error) {
        let handle = try SessionHandle.from(session)
        handle.clearLastResult()
        let prompt = try utf8String(prompt, "prompt_utf8")
        guard let callback else { throw CABIError.null("callback") }
        let generation = try options.map { try CallOptions($0).generation } ?? handle.model.defaults
        try handle.run(callback: callback, userData: userData) { $0.generate(prompt: prompt, options: generation) }
    }
}

@_cdecl("gt_chat")
public func gt_chat_impl(_ session: OpaquePointer?, _ messages: UnsafePointer<gt_message>?, _ count: Int,
                         _ options: UnsafePointer<gt_options>?, _ callback: gt_callback?,
                         _ userData: UnsafeMutableRawPointer?,
                         _ error: UnsafeMutablePointer<OpaquePointer?>?) -> gt_status {
    reporting(error) {
        let handle = try SessionHandle.from(session)
        handle.clearLastResult()
        guard let messages else { throw CABIError.null("messages") }
        // A size_t above Int.max arrives negative: no array is that long.
        guard count >= 0 else {
            throw CABIError(GT_ERR_INVALID_ARGUMENT, "n_messages is \(UInt(bitPattern: count)): no array of messages is that long")
        }
        guard count > 0 else { throw CABIError(GT_ERR_CHAT, "invalid chat messages: there are no messages") }
        var chat: [ChatMessage] = []
        for i in 0..<count {
            let role = try utf8String(messages[i].role, "messages[\(i)].role")
            let content = try utf8String(messages[i].content, "messages[\(i)].content")
            guard let chatRole = chatRole(role) else {
                throw CABIError(GT_ERR_INVALID_ARGUMENT,
                                "messages[\(i)].role is \"\(role)\": it must be \"system\", \"user\" or \"assistant\"")
            }
            chat.append(ChatMessage(role: chatRole, content: content))
        }
        guard let callback else { throw CABIError.null("callback") }
        let generation = try options.map { try CallOptions($0).generation } ?? handle.model.defaults
        try handle.run(callback: callback, userData: userData) { $0.chat(messages: chat, options: generation) }
    }
}

/// A role's name; "model" (Gemma's own word) is accepted for "assistant".
private func chatRole(_ name: String) -> ChatRole? {
    name == "model" ? .assistant : ChatRole(rawValue: name)
}
