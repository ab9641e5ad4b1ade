import ArgumentParser
import Foundation
import GemmaTiny
import GemmaTinyCLISupport

struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perplexity",
        abstract: "Measure a model's perplexity on a text file, as llama-perplexity does.",
        discussion: """
        The whole file is tokenized with <bos> first and cut into non-overlapping windows of --ctx \
        tokens (a tail shorter than a window is dropped). The first token of every window is \
        replaced by <bos>, each window is run from an empty KV cache, and only the second half is \
        scored: the tokens at positions ctx/2+1 ... ctx-1 of the window, each predicted from all \
        the tokens before it (llama.cpp's scheme, so figures are comparable with its \
        llama-perplexity at the same context). Prints the running estimate after each window and \
        then the final line `Final estimate: PPL = X +/- E`, where E is the standard error. \
        --ctx defaults to 512 here (as in llama-perplexity); --ctx 0 is the model's maximum.
        """
    )

    @OptionGroup(title: "Model") var model: ModelOptions

    @Option(name: [.customShort("f"), .customLong("file")], help: ArgumentHelp("Text file to score.", valueName: "path"))
    var file: String

    @Option(name: .customLong("chunks"), parsing: .unconditional, help: ArgumentHelp("Score at most this many windows (-1 = all).", valueName: "n"))
    var chunks: Int = -1

    func validate() throws {
        if let c = model.contextLength, c != 0 && c < 4 {
            throw ValidationError("--ctx must be at least 4 for perplexity, got \(c)")
        }
        if chunks == 0 || chunks < -1 { throw ValidationError("--chunks must be -1 (all windows) or at least 1, got \(chunks)") }
    }

    func run() throws {
        let text = String(decoding: try readInput(file), as: UTF8.self)
        var planned = model.plannedSession
        if model.contextLength == nil { planned.contextLength = 512 }  // this command's default
        let (gemma, loadSeconds) = try model.load(session: planned)
        let ctx = model.contextLength == nil ? min(512, gemma.config.maxPositionEmbeddings) : model.context(for: gemma)
        let session: InferenceSession
        let tokenizer: Tokenizer
        do {
            tokenizer = try Tokenizer(vocabulary: gemma.file.vocabulary, settings: gemma.file.metadata.tokenizer)
            session = try InferenceSession(model: gemma, contextLength: ctx, kernels: model.makeKernels(),
                                           batchSize: model.batchSize, cacheType: model.cacheType)
        } catch let e as ModelError {
            throw CLIError.message(e.description)
        } catch let e as TokenizerError {
            throw CLIError.message(e.description)
        }
        let bos = tokenizer.bosId
        let tokens = (bos >= 0 ? [bos] : []) + tokenizer.encode(text)
        var windows = tokens.count / ctx
        if chunks > 0 { windows = min(windows, chunks) }
        guard windows > 0 else {
            throw CLIError.message("\(file) is \(tokens.count) tokens, less than one \(ctx)-token window; use a smaller --ctx or a longer file")
        }
        let first = ctx / 2
        printNote("perplexity: tokenized \(tokens.count) tokens; \(windows) windows of \(ctx) tokens, scoring the last \(ctx - 1 - first) tokens of each")

        var nll: Double = 0, nll2: Double = 0
        var count = 0
        let start = now()
        let vocab = gemma.config.vocabSize
        for w in 0..<windows {
            session.reset()
            var window = Array(tokens[(w * ctx)..<((w + 1) * ctx)])
            if bos >= 0 { window[0] = bos }
            // The window's first ctx - 1 tokens in batches; token j's logits predict token j + 1.
            do {
                try session.prefill(window[0..<(ctx - 1)], logits: .all(from: first) { j, logits in
                    // log softmax(logits)[target], in f64.
                    let target = window[j + 1]
                    var maxLogit = -Float.infinity
                    for v in 0..<vocab where logits[v] > maxLogit { maxLogit = logits[v] }
                    let m = Double(maxLogit)
                    var sum: Double = 0
                    for v in 0..<vocab { sum += Foundation.exp(Double(logits[v]) - m) }
                    let logProb = Double(logits[target]) - m - Foundation.log(sum)
                    nll -= logProb
                    nll2 += logProb * logProb
                    count += 1
                })
            } catch {
                throw CLIError.message(error.description)
            }
            if w == 0 {
                let seconds = now() - start
                printNote(String(format: "perplexity: %.2f s per window, about %.1f minutes in all", seconds,
                                 seconds * Double(windows) / 60))
            }
            writeOut(String(format: "[%d]%.4f,", w + 1, Foundation.exp(nll / Double(count))))
        }
        writeOut("\n")
        let mean = nll / Double(count)
        let ppl = Foundation.exp(mean)
        var error = 0.0
        let variance = nll2 / Double(count) - mean * mean
        if variance > 0 && count > 1 { error = (variance / Double(count - 1)).squareRoot() * ppl }
        writeOut(String(format: "Final estimate: PPL = %.4f +/- %.5f\n", ppl, error))
        if model.verbose {
            let seconds = now() - start
            printNote(String(format: "load time: %.0f ms; scored %d tokens in %.1f s (%.2f tokens/s through the model)",
                             loadSeconds * 1000, count, seconds, Double(windows * (ctx - 1)) / seconds))
            if let peak = peakResidentBytes() { printNote("peak memory: \(formatBytes(peak)) (VmHWM)") }
        }
    }
}
