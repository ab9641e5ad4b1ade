import ArgumentParser
import Foundation
import GemmaTiny
import GemmaTinyCLISupport

/// A comma-separated list of integers ("128,512").
struct IntList: ExpressibleByArgument, Sendable {
    var values: [Int]

    init?(argument: String) {
        var values: [Int] = []
        for part in argument.split(separator: ",", omittingEmptySubsequences: false) {
            guard let v = Int(part.trimmingCharacters(in: .whitespaces)) else { return nil }
            values.append(v)
        }
        guard !values.isEmpty else { return nil }
        self.values = values
    }

    init(_ values: [Int]) { self.values = values }

    var defaultValueDescription: String { values.map(String.init).joined(separator: ",") }
}

enum BenchOutputFormat: String, ExpressibleByArgument, Sendable {
    case md, json
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure prompt processing and generation speed, as llama-bench does.",
        discussion: """
        For each thread count (and batch size), runs the tests -r times and reports the median \
        tokens/s with its spread (standard deviation and min-max):
          ppN  N prompt tokens (<bos>, then random ids) through an empty KV cache in one \
        prefill, logits for the last one only.
          tgN  N tokens decoded one at a time (random ids, logits every step) after an 8-token \
        prompt that is not timed.
        With -d D (as llama-bench's -d), every test starts with D random tokens already in the \
        KV cache (fed untimed before each run; for tg in place of the 8-token prompt) and is \
        labelled "ppN @ dD" / "tgN @ dD".
        Each test runs once untimed first (a pp test with one batch, a tg test with one token). \
        Also reported: load time, peak RSS (VmHWM) at the end, and the anonymous RSS (RssAnon: \
        heap, KV cache, activations; not the mapped weights) after each thread count's tg runs. \
        Lists are comma-separated; 0 in -p or -n skips that kind of test.
        With tg tests, the memory read bandwidth is measured for each thread count (a 1 GiB read \
        loop, best of 5), and each tg result is set against it: weight bytes read per token \
        (every tensor once, the tied embedding as the LM head) x tokens/s / bandwidth.
        """
    )

    @Option(name: [.customShort("m"), .long], help: ArgumentHelp("Model file (.gtm).", valueName: "path"))
    var model: String

    @Option(name: [.customShort("p"), .customLong("n-prompt")], help: ArgumentHelp("Prompt lengths (pp tests).", valueName: "n,..."))
    var prompt = IntList([512])

    @Option(name: [.customShort("n"), .customLong("n-gen")], help: ArgumentHelp("Generated token counts (tg tests).", valueName: "n,..."))
    var gen = IntList([128])

    @Option(name: [.customShort("d"), .customLong("n-depth")], help: ArgumentHelp("Tokens already in the KV cache before each test (depths).", valueName: "n,..."))
    var depth = IntList([0])

    @Option(name: [.customShort("r"), .customLong("repetitions")], parsing: .unconditional, help: ArgumentHelp("Timed runs per test.", valueName: "n"))
    var repetitions = 5

    @Option(name: [.customShort("t"), .customLong("threads")], help: ArgumentHelp("Thread counts (default: one per core).", valueName: "n,..."))
    var threads: IntList?

    @Option(name: [.customShort("b"), .customLong("batch-size")], help: ArgumentHelp("Prompt batch sizes (tokens per pass).", valueName: "n,..."))
    var batchSize = IntList([InferenceSession.defaultBatchSize])

    @Option(name: [.customShort("c"), .customLong("ctx")], parsing: .unconditional, help: ArgumentHelp("Context length (KV cache size; default 2048, or what the tests at their depth need if more); capped at the model's maximum.", valueName: "n"))
    var contextOption: Int?

    /// --ctx, or 2048 raised to the most positions a test needs (depth + prompt, or depth + generated).
    var contextLength: Int {
        if let c = contextOption { return c }
        let deepest = depth.values.max() ?? 0
        let pp = (prompt.values.max() ?? 0) + deepest
        let tg = (gen.values.max() ?? 0) + max(deepest, Self.tgPromptLength)
        return max(2048, pp, tg)
    }

    @Option(name: .customLong("cache-type"), help: ArgumentHelp("KV cache type for keys and values: 'f16' (default) or 'f32' (as llama-bench's -ctk/-ctv, one for both).", valueName: "type"))
    var cacheType: KVCacheType = .default

    @Option(name: [.customShort("o"), .customLong("output")], help: ArgumentHelp("Output format: md (a Markdown table) or json.", valueName: "md|json"))
    var output: BenchOutputFormat = .md

    @Option(name: .long, help: ArgumentHelp("Where a mostly compressed model (--compress always) is unpacked: sibling or memory.", valueName: "mode"))
    var unpack: ModelLoader.UnpackMode = .sibling

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Seed of the random token ids.", valueName: "n"))
    var seed: UInt64 = 1234

    @Flag(name: .long, help: "Quantized products also run on their inputs' int8 rounding error (inputs of about 15 bits; see gemma-tiny run --help).")
    var preciseInputs = false

    @Flag(name: .customLong("no-bandwidth"), help: "Skip the memory read bandwidth measurement (done when there are tg tests).")
    var noBandwidth = false

    @Flag(name: [.customShort("v"), .long], help: "Print each test as it runs on stderr.")
    var verbose = false

    /// Prompt tokens fed (untimed) before a tg test.
    static let tgPromptLength = 8

    /// The most tokens -p, -n, -d and --ctx accept: far beyond any model's context (Gemma's is at
    /// most 131072), and small enough that their sums cannot overflow.
    static let maximumTokenCount = 1 << 24

    func validate() throws {
        if repetitions < 1 { throw ValidationError("-r must be at least 1, got \(repetitions)") }
        let counts = prompt.values + gen.values + depth.values
        if counts.contains(where: { $0 < 0 || $0 > Self.maximumTokenCount }) {
            throw ValidationError("-p, -n and -d take token counts from 0 to \(Self.maximumTokenCount)")
        }
        if let c = contextOption, c > Self.maximumTokenCount {
            throw ValidationError("--ctx must be at most \(Self.maximumTokenCount), got \(c)")
        }
        if let t = threads, t.values.contains(where: { $0 < 1 || $0 > WorkerPool.maximumThreadCount }) {
            throw ValidationError("-t takes thread counts from 1 to \(WorkerPool.maximumThreadCount)")
        }
        if batchSize.values.contains(where: { $0 < 1 }) { throw ValidationError("-b takes batch sizes >= 1") }
        if contextLength < 1 { throw ValidationError("--ctx must be at least 1, got \(contextLength)") }
    }

    func run() throws {
        let options = try ModelOptions.parse(["-m", model, "--unpack", unpack.rawValue] + (verbose ? ["-v"] : []))
        // The memory check counts the largest session the runs will make.
        let (gemma, loadSeconds) = try options.load(session: MemoryEstimate.Session(
            contextLength: contextLength, batchSize: batchSize.values.max() ?? InferenceSession.defaultBatchSize,
            threads: threads?.values.max() ?? 0, cacheType: cacheType))
        let ctx = min(contextLength, gemma.config.maxPositionEmbeddings)
        if ctx < contextLength { printNote("note: --ctx \(contextLength) is more than the model's \(ctx) positions; using \(ctx)") }
        let prompts = prompt.values.filter { $0 > 0 }
        let gens = gen.values.filter { $0 > 0 }
        let deepest = depth.values.max() ?? 0
        if let p = prompts.first(where: { $0 + deepest > ctx }) {
            throw CLIError.message("pp\(p) at depth \(deepest) needs \(p + deepest) positions but the context is \(ctx); raise --ctx")
        }
        if let n = gens.first(where: { $0 + max(deepest, Self.tgPromptLength) > ctx }) {
            throw CLIError.message("tg\(n) needs \(n + max(deepest, Self.tgPromptLength)) positions but the context is \(ctx); raise --ctx")
        }

        var report = BenchReport(model: BenchReport.ModelInfo(gemma, path: model), contextLength: ctx,
                                 cacheType: cacheType.rawValue, loadMs: loadSeconds * 1000, repetitions: repetitions)
        var rng = Xoshiro256StarStar(seed: seed)
        let vocab = gemma.config.vocabSize
        let bos = gemma.file.metadata.tokenizer.bosId
        func randomTokens(_ n: Int) -> [Int] {
            (0..<n).map { i in i == 0 && bos >= 0 ? bos : Int(rng.next() % UInt64(vocab)) }
        }

        for t in threads?.values ?? [WorkerPool.defaultThreadCount] {
            let kernels = makeDefaultKernels(threads: t, preciseInputs: preciseInputs)
            for b in batchSize.values {
                let session: InferenceSession
                do {
                    session = try InferenceSession(model: gemma, contextLength: ctx, kernels: kernels, batchSize: b,
                                                   cacheType: cacheType)
                } catch {
                    throw CLIError.message(error.description)
                }
                func result(_ test: String, prompt: Int, gen: Int, depth: Int, _ samples: [Double]) -> BenchReport.Result {
                    BenchReport.Result(test: depth > 0 ? "\(test) @ d\(depth)" : test, threads: t, batchSize: session.batchSize,
                                       kernels: kernels.name, nPrompt: prompt, nGen: gen, nDepth: depth, seconds: samples)
                }
                for d in depth.values {
                    // The depth's tokens, fed untimed before every run (after a reset).
                    let context = randomTokens(d)
                    func fill() throws {
                        session.reset()
                        if d > 0 { _ = try timed { try session.prefill(context, logits: .none) } }
                    }
                    for p in prompts {
                        let tokens = randomTokens(p)
                        try fill()
                        _ = try timed { try session.prefill(tokens.prefix(session.batchSize), logits: .last) }  // warm-up
                        var samples: [Double] = []
                        for _ in 0..<repetitions {
                            try fill()
                            samples.append(try timed { try session.prefill(tokens, logits: .last) })
                        }
                        let r = result("pp\(p)", prompt: p, gen: 0, depth: d, samples)
                        if verbose { printNote(r.summary) }
                        report.results.append(r)
                    }
                    for n in gens {
                        let start = d > 0 ? [] : randomTokens(Self.tgPromptLength)
                        let steps = randomTokens(n + 1).dropFirst()
                        func prepare() throws {
                            try fill()
                            if !start.isEmpty { _ = try timed { try session.prefill(start, logits: .last) } }
                        }
                        try prepare()
                        _ = try timed { try session.forward(token: steps.first!) }  // warm-up
                        var samples: [Double] = []
                        for _ in 0..<repetitions {
                            try prepare()
                            samples.append(try timed {
                                for token in steps { try session.forward(token: token, computeLogits: true) }
                            })
                        }
                        let r = result("tg\(n)", prompt: 0, gen: n, depth: d, samples)
                        if verbose { printNote(r.summary) }
                        report.results.append(r)
                    }
                }
                let memory = BenchReport.Memory(threads: t, batchSize: session.batchSize, afterTest: gens.isEmpty ? "pp" : "tg",
                                                rssAnon: procStatusBytes("RssAnon"), rssFile: procStatusBytes("RssFile"),
                                                vmHWM: procStatusBytes("VmHWM"), kvCacheBytes: session.kvCacheBytes,
                                                activationBytes: session.activationBufferBytes)
                report.memory.append(memory)
            }
        }
        report.peakRSS = procStatusBytes("VmHWM")
        // After the peak RSS is taken: the read loop's 1 GiB buffer is not the model's memory.
        if !gens.isEmpty && !noBandwidth {
            for t in threads?.values ?? [WorkerPool.defaultThreadCount] {
                if let gbps = measureReadBandwidth(threads: t) { report.bandwidth.append(BenchReport.Bandwidth(threads: t, readGBps: gbps)) }
            }
        }

        switch output {
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            writeOut(String(decoding: try encoder.encode(report), as: UTF8.self) + "\n")
        case .md:
            writeOut(report.markdown())
        }
    }

    /// Seconds `body` takes.
    private func timed(_ body: () throws -> Void) throws -> Double {
        let start = now()
        do {
            try body()
        } catch let error as InferenceError {
            throw CLIError.message(error.description)
        }
        return now() - start
    }
}

struct BenchReport: Encodable {
    struct ModelInfo: Encodable {
        var path: String
        /// "gemma 2.5B q4" (architecture, parameter count, storage type of the matrices).
        var description: String
        var architecture: String
        var parameters: Int
        /// Bytes of tensor data (what is mapped).
        var sizeBytes: Int
        var weightsType: String
        var embeddingType: String

        init(_ model: GemmaModel, path: String) {
            self.path = path
            architecture = model.config.architecture.rawValue
            parameters = model.parameterCount
            sizeBytes = model.file.tensorBytes
            let q = model.file.metadata.quantization
            weightsType = "\(q.type)"
            embeddingType = "\(q.embeddingType)"
            description = "\(architecture) \(BenchReport.countLabel(parameters)) \(weightsType)"
        }

        enum CodingKeys: String, CodingKey {
            case path, description, architecture, parameters, sizeBytes = "size_bytes"
            case weightsType = "weights_type", embeddingType = "embedding_type"
        }
    }

    struct Result: Encodable {
        var test: String
        var threads: Int
        var batchSize: Int
        var kernels: String
        var nPrompt: Int
        var nGen: Int
        /// Tokens in the KV cache before the test (-d).
        var nDepth: Int = 0
        /// Seconds of each timed run.
        var seconds: [Double]

        var tokens: Int { nPrompt + nGen }
        var samples: [Double] { seconds.map { Double(tokens) / $0 } }
        var median: Double {
            let s = samples.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
        var mean: Double { samples.reduce(0, +) / Double(samples.count) }
        var stddev: Double {
            guard samples.count > 1 else { return 0 }
            let m = mean
            return (samples.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(samples.count - 1)).squareRoot()
        }

        var summary: String {
            String(format: "%@ t=%d b=%d: %.2f tokens/s (median of %d; %.2f-%.2f)", test, threads, batchSize, median,
                   samples.count, samples.min() ?? 0, samples.max() ?? 0)
        }

        enum CodingKeys: String, CodingKey {
            case test, threads, batchSize = "batch_size", kernels, nPrompt = "n_prompt", nGen = "n_gen", nDepth = "n_depth"
            case samplesNs = "samples_ns", samplesTs = "samples_ts", medianTs = "median_ts", meanTs = "mean_ts"
            case stddevTs = "stddev_ts", minTs = "min_ts", maxTs = "max_ts"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(test, forKey: .test)
            try c.encode(threads, forKey: .threads)
            try c.encode(batchSize, forKey: .batchSize)
            try c.encode(kernels, forKey: .kernels)
            try c.encode(nPrompt, forKey: .nPrompt)
            try c.encode(nGen, forKey: .nGen)
            try c.encode(nDepth, forKey: .nDepth)
            try c.encode(seconds.map { Int(($0 * 1e9).rounded()) }, forKey: .samplesNs)
            try c.encode(samples, forKey: .samplesTs)
            try c.encode(median, forKey: .medianTs)
            try c.encode(mean, forKey: .meanTs)
            try c.encode(stddev, forKey: .stddevTs)
            try c.encode(samples.min() ?? 0, forKey: .minTs)
            try c.encode(samples.max() ?? 0, forKey: .maxTs)
        }
    }

    struct Memory: Encodable {
        var threads: Int
        var batchSize: Int
        /// "tg" (sampled after the tg runs) or "pp" when there were none.
        var afterTest: String
        var rssAnon: Int?
        var rssFile: Int?
        var vmHWM: Int?
        var kvCacheBytes: Int
        var activationBytes: Int

        enum CodingKeys: String, CodingKey {
            case threads, batchSize = "batch_size", afterTest = "after_test", rssAnon = "rss_anon_bytes"
            case rssFile = "rss_file_bytes", vmHWM = "vm_hwm_bytes", kvCacheBytes = "kv_cache_reserved_bytes"
            case activationBytes = "activation_bytes"
        }
    }

    var model: ModelInfo
    var contextLength: Int
    /// The KV cache's element type (f32, f16).
    var cacheType: String
    var loadMs: Double
    var repetitions: Int
    var results: [Result] = []
    var memory: [Memory] = []
    var peakRSS: Int?
    var bandwidth: [Bandwidth] = []
    var build = "gemma-tiny \(gemmaTinyVersion)"
    var cpu = cpuModelName()

    enum CodingKeys: String, CodingKey {
        case model, contextLength = "context_length", cacheType = "cache_type", loadMs = "load_ms", repetitions, results, memory
        case peakRSS = "peak_rss_bytes", build, cpu, bandwidth = "read_bandwidth"
    }

    /// The memory read bandwidth a simple multithreaded read loop reaches with `threads` threads.
    struct Bandwidth: Encodable {
        var threads: Int
        var readGBps: Double
        enum CodingKeys: String, CodingKey { case threads, readGBps = "read_gb_per_s" }
    }

    /// For a tg result: GB/s of weights read (all tensor bytes per token) and its share of the
    /// read bandwidth measured with the same thread count.
    func weightTraffic(_ r: Result) -> (gbps: Double, fraction: Double)? {
        guard r.nGen > 0, let bw = bandwidth.first(where: { $0.threads == r.threads }) else { return nil }
        let gbps = Double(model.sizeBytes) * r.median / 1e9
        return (gbps, gbps / bw.readGBps)
    }

    /// llama-bench's table, plus the spread and a memory table.
    func markdown() -> String {
        var out = "| model | size | params | kernels | threads | n_batch | test | t/s (median ± sd) | min – max |\n"
        out += "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |\n"
        for r in results {
            out += "| \(model.description) | \(formatBytes(model.sizeBytes)) | \(Self.countLabel(model.parameters)) | \(r.kernels) "
            out += "| \(r.threads) | \(r.batchSize) | \(r.test) "
            out += String(format: "| %.2f ± %.2f | %.2f – %.2f |\n", r.median, r.stddev, r.samples.min() ?? 0, r.samples.max() ?? 0)
        }
        out += "\n| threads | n_batch | RssAnon after \(memory.first?.afterTest ?? "tg") | RssFile | VmHWM | KV cache (\(cacheType), reserved) |\n"
        out += "| ---: | ---: | ---: | ---: | ---: | ---: |\n"
        for m in memory {
            out += "| \(m.threads) | \(m.batchSize) | \(m.rssAnon.map(formatBytes) ?? "?") | \(m.rssFile.map(formatBytes) ?? "?") "
            out += "| \(m.vmHWM.map(formatBytes) ?? "?") | \(formatBytes(m.kvCacheBytes)) |\n"
        }
        for r in results {
            guard let w = weightTraffic(r), let bw = bandwidth.first(where: { $0.threads == r.threads }) else { continue }
            out += String(format: "\n%@ with %d threads: %.3g GB of weights per token x %.2f tok/s = %.3g GB/s = %.3g%% of the %.3g GB/s read bandwidth",
                          r.test, r.threads, Double(model.sizeBytes) / 1e9, r.median, w.gbps, w.fraction * 100, bw.readGBps)
        }
        if !bandwidth.isEmpty { out += "\n" }
        out += String(format: "\nload time %.0f ms; context %d; KV cache %@; %d runs per test; peak RSS (VmHWM) %@; %@; %@\n", loadMs,
                      contextLength, cacheType, repetitions, peakRSS.map(formatBytes) ?? "?", cpu, build)
        return out
    }

    /// 2506172416 -> "2.51 B", 1234567 -> "1.23 M".
    static func countLabel(_ n: Int) -> String {
        let v = Double(n)
        if v >= 1e9 { return String(format: "%.2f B", v / 1e9) }
        if v >= 1e6 { return String(format: "%.2f M", v / 1e6) }
        if v >= 1e3 { return String(format: "%.2f K", v / 1e3) }
        return "\(n)"
    }
}

/// "model name" of /proc/cpuinfo (x86) or the architecture.
func cpuModelName() -> String {
    #if arch(x86_64)
    let arch = "x86_64"
    #elseif arch(arm64)
    let arch = "arm64"
    #else
    let arch = "unknown"
    #endif
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return arch }
    for line in info.split(separator: "\n") where line.hasPrefix("model name") {
        if let v = line.split(separator: ":", maxSplits: 1).last {
            return "\(v.trimmingCharacters(in: .whitespaces)) (\(arch), \(WorkerPool.defaultThreadCount) cores)"
        }
    }
    return "\(arch), \(WorkerPool.defaultThreadCount) cores"
}
