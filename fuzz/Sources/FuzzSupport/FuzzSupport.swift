import Foundation
@testable import GemmaConvert
import GemmaTiny

/// libFuzzer's driver (compiler-rt, linked by `-sanitize=fuzzer`).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// Scratch files to remove at exit (libFuzzer ends with exit(); a crash leaves its file behind).
nonisolated(unsafe) var scratchPaths: Set<String> = []

/// Helpers shared by the fuzz targets.
public enum FuzzSupport {
    /// Runs libFuzzer with `testOneInput` (the target's `LLVMFuzzerTestOneInput`).
    ///
    /// Each target has an `@main` that calls this instead of linking libFuzzer's own `main`:
    /// SwiftPM links executables with `main` renamed to `<module>_main` (so that tests can
    /// import them), and with `-parse-as-library` and no `@main` that symbol would be missing.
    public static func runLibFuzzer(_ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> Never {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
    }

    /// The repository root: $GEMMA_FUZZ_ROOT, else derived from this source file's path.
    public static var repositoryRoot: String {
        if let root = ProcessInfo.processInfo.environment["GEMMA_FUZZ_ROOT"] { return root }
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    /// Writes `data` to a per-process scratch file in /dev/shm (tmpfs: no disk traffic) and
    /// returns its path; the readers under test only open paths. Rewritten on every input.
    public static func scratchFile(_ data: UnsafeRawBufferPointer, name: String) -> String {
        let dir = FileManager.default.isWritableFile(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let path = "\(dir)/gemma-fuzz-\(getpid())-\(name)"
        if !scratchPaths.contains(path) {
            if scratchPaths.isEmpty { atexit { for p in scratchPaths { unlink(p) } } }
            scratchPaths.insert(path)
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        precondition(fd >= 0, "cannot create \(path)")
        var done = 0
        while done < data.count {
            let n = write(fd, data.baseAddress! + done, data.count - done)
            precondition(n > 0, "cannot write \(path)")
            done += n
        }
        close(fd)
        return path
    }

    /// The tokenizer of the tiny fixture model (fixtures/tiny-gemma/tokenizer.model), read
    /// through the converter's SentencePiece reader as `gemma-quantize` does.
    public static func fixtureTokenizer() -> Tokenizer {
        let path = repositoryRoot + "/fixtures/tiny-gemma/tokenizer.model"
        do {
            let (vocabulary, settings) = try SentencePieceModelReader.read(path: path)
            return try Tokenizer(vocabulary: vocabulary, settings: settings)
        } catch {
            fatalError("cannot load the fixture tokenizer \(path): \(error) (set GEMMA_FUZZ_ROOT)")
        }
    }

    /// The same fixture vocabulary imported from GGUF (fixtures/gguf/tiny-gemma3-bf16.gguf) as
    /// `gemma-quantize` imports it: llama.cpp's types and semantics.
    public static func fixtureTokenizerFromGGUF() -> Tokenizer {
        let path = repositoryRoot + "/fixtures/gguf/tiny-gemma3-bf16.gguf"
        do {
            var notices: [String] = []
            let (vocabulary, settings) = try GGUFCheckpoint.vocabulary(GGUFFile(path: path).metadata, file: path, notices: &notices)
            return try Tokenizer(vocabulary: vocabulary, settings: settings)
        } catch {
            fatalError("cannot load the fixture tokenizer \(path): \(error) (set GEMMA_FUZZ_ROOT)")
        }
    }

    /// Exercises a tokenizer built from untrusted data: encoding, special-token parsing and
    /// decoding must not crash, and ids must stay in the vocabulary.
    public static func exercise(_ tokenizer: Tokenizer) {
        let text = "Hello, world!  \n\t<start_of_turn>user\nÀ 日本 🙂 <bos>\u{0}\u{FFFD}<unk>"
        let plain = tokenizer.encode(text)
        let parsed = tokenizer.encode(text, parseSpecialTokens: true)
        for id in plain + parsed { check(id >= 0 && id < tokenizer.vocabularySize, "id \(id) outside the vocabulary") }
        _ = tokenizer.decode(plain)
        _ = tokenizer.decode(parsed)
        _ = tokenizer.decode(Array(-2..<min(tokenizer.vocabularySize + 2, 600)))
        var streaming = tokenizer.makeStreamingDecoder()
        for id in parsed { _ = streaming.append(id) }
        _ = streaming.finish()
        for id in 0..<min(tokenizer.vocabularySize, 600) {
            _ = tokenizer.piece(id)
            _ = tokenizer.isControl(id)
        }
    }

    /// An invariant violation: report and abort so libFuzzer saves the input.
    public static func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                             file: StaticString = #fileID, line: UInt = #line) {
        if !condition() {
            FileHandle.standardError.write(Data("invariant violated (\(file):\(line)): \(message())\n".utf8))
            abort()
        }
    }
}
