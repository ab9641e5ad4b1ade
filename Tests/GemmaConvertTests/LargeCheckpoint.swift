import Foundation
import Synchronization

/// A synthetic checkpoint big enough for fault tests: about 11.6 M parameters (hidden 256,
/// 10 layers, vocabulary 8192), so its bf16 model file (~23 MB) overflows a 2 MiB file system and
/// a single-threaded q4 conversion at zstd level 19 runs for over a second (1.5 s in a debug
/// build on a 2-core machine), long enough to be killed in the middle. Written once per test
/// process into a temporary folder (about 4.5 s in a debug build), removed at exit.
enum LargeCheckpoint {
    static var checkpoint: SyntheticCheckpoint {
        var c = SyntheticCheckpoint()
        c.vocabSize = 8192
        c.hidden = 256
        c.intermediate = 1024
        c.layers = 10
        c.heads = 4
        c.kvHeads = 1
        c.headDim = 64
        c.seed = 11
        return c
    }

    private static let folder = Mutex<String?>(nil)

    /// The checkpoint's folder, written on first use.
    static func path() throws -> String {
        try folder.withLock { cached in
            if let cached { return cached }
            let dir = NSTemporaryDirectory() + "gt-large-checkpoint-\(getpid())"
            atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "gt-large-checkpoint-\(getpid())") }
            try checkpoint.write(to: dir)
            cached = dir
            return dir
        }
    }
}
