import ArgumentParser
import Dispatch
import Foundation
import GemmaTiny
import GemmaTinyCLISupport
import GemmaTinyServer
import Synchronization

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemma-tiny-serve",
        abstract: "Serve the model over HTTP with an OpenAI-compatible API.",
        discussion: """
        Endpoints: POST /v1/chat/completions and POST /v1/completions (JSON, or server-sent \
        events with "stream": true), GET /v1/models, GET /health. The model id is the file name \
        without its extension (or --model-id). Up to --parallel requests generate at once, their \
        tokens interleaved; up to --max-queue more wait for a slot, and further requests get 429. \
        With an API key (GEMMA_TINY_API_KEY or --api-key), every endpoint but /health needs \
        'Authorization: Bearer KEY'; a --host other than loopback without one prints a warning. \
        A client that disconnects cancels its generation. SIGTERM or SIGINT shuts down \
        gracefully: new requests get 503, running ones get --shutdown-grace seconds to finish, \
        then are cancelled. The sampling flags set the defaults for fields a request leaves out. \
        `gemma-tiny serve ARGS...` runs this program with the same arguments.

        Examples:
          gemma-tiny-serve -m gemma-2b-it.gtm --port 8080
          gemma-tiny serve -m gemma-2b-it.gtm --unix-socket /run/gemma-tiny/api.sock
          GEMMA_TINY_API_KEY=$(cat /etc/gemma-tiny/key) gemma-tiny serve -m gemma-2b-it.gtm --host 0.0.0.0
          curl http://127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' \\
            -d '{"messages":[{"role":"user","content":"Hello"}],"max_tokens":64}'
        """,
        version: gemmaTinyVersion
    )

    @OptionGroup(title: "Model") var model: ModelOptions
    @OptionGroup(title: "Sampling defaults") var sampling: SamplingFlags

    @Option(name: .long, help: ArgumentHelp("Address to listen on.", valueName: "host"))
    var host: String = "127.0.0.1"

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("TCP port (0 = any free port).", valueName: "n"))
    var port: Int = 8080

    @Option(name: .customLong("unix-socket"), help: ArgumentHelp("Listen on this Unix domain socket instead of TCP.", valueName: "path"))
    var unixSocket: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Requests generating at the same time (each has its own KV cache).", valueName: "n"))
    var parallel: Int = 2

    @Option(name: .customLong("max-queue"), parsing: .unconditional, help: ArgumentHelp("Requests that may wait for a free slot; more get 429.", valueName: "n"))
    var maxQueue: Int = 8

    @Option(name: .customLong("max-body"), parsing: .unconditional, help: ArgumentHelp("Largest request body in bytes; larger ones get 413.", valueName: "bytes"))
    var maxBody: Int = 1 << 20

    @Option(name: .customLong("shutdown-grace"), parsing: .unconditional, help: ArgumentHelp("Seconds running requests get to finish on shutdown.", valueName: "s"))
    var shutdownGrace: Double = 10

    @Option(name: .customLong("header-timeout"), parsing: .unconditional, help: ArgumentHelp("Seconds a client may take from the first byte of a request to the end of its headers (then 408).", valueName: "s"))
    var headerTimeout: Double = 10

    @Option(name: .customLong("body-timeout"), parsing: .unconditional, help: ArgumentHelp("Seconds a client may take to send a request body after its headers (then 408).", valueName: "s"))
    var bodyTimeout: Double = 30

    @Option(name: .customLong("idle-timeout"), parsing: .unconditional, help: ArgumentHelp("Seconds a keep-alive connection may stay idle between requests before it is closed.", valueName: "s"))
    var idleTimeout: Double = 60

    @Option(name: .customLong("max-connections"), parsing: .unconditional, help: ArgumentHelp("Client connections open at once; one more gets 503 and is closed.", valueName: "n"))
    var maxConnections: Int = 256

    @Option(name: .customLong("allowed-host"), help: ArgumentHelp("Also accept requests whose Host header names this host (repeatable; '*' accepts any). Loopback names and the --host address are always accepted; others get 421.", valueName: "name"))
    var allowedHosts: [String] = []

    @Option(name: .customLong("cors-origin"), help: ArgumentHelp("Let web pages from this origin (e.g. http://localhost:3000) call the API: CORS preflights are answered for it (repeatable; none by default).", valueName: "origin"))
    var corsOrigins: [String] = []

    @Option(name: .customLong("api-key"), help: ArgumentHelp("Require 'Authorization: Bearer KEY' on every endpoint but /health (else 401). Prefer the GEMMA_TINY_API_KEY environment variable: ps shows flags to every user. The flag wins if both are set.", valueName: "key"))
    var apiKey: String?

    @Option(name: .customLong("model-alias"), help: ArgumentHelp("Also accept this name in a request's \"model\" (repeatable; listed by /v1/models), for clients hard-wired to another model name (e.g. gpt-4o-mini).", valueName: "name"))
    var modelAliases: [String] = []

    @Option(name: .customLong("model-id"), help: ArgumentHelp("Model id for the API (default: the file name without its extension).", valueName: "id"))
    var modelId: String?

    @Option(name: .customLong("prefill-chunk"), parsing: .unconditional, help: ArgumentHelp("Prompt tokens per scheduling step.", valueName: "n"))
    var prefillChunk: Int = 16

    func validate() throws {
        if unixSocket == nil && !(0...65535).contains(port) { throw ValidationError("--port must be 0...65535, got \(port)") }
        if parallel < 1 { throw ValidationError("--parallel must be at least 1, got \(parallel)") }
        // Each slot is a session with its own KV cache.
        if parallel > 64 { throw ValidationError("--parallel must be at most 64, got \(parallel)") }
        if let modelId, modelId.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--model-id must not be empty") }
        if modelAliases.contains(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            throw ValidationError("--model-alias must not be empty")
        }
        _ = try resolvedAPIKey()
        if maxQueue < 0 { throw ValidationError("--max-queue must be >= 0, got \(maxQueue)") }
        if maxBody < 1 { throw ValidationError("--max-body must be at least 1, got \(maxBody)") }
        // Bounded so that the conversion to milliseconds cannot overflow (1e300 used to trap).
        if !(shutdownGrace >= 0 && shutdownGrace <= 86_400) {
            throw ValidationError("--shutdown-grace must be between 0 and 86400 seconds, got \(shutdownGrace)")
        }
        if prefillChunk < 1 { throw ValidationError("--prefill-chunk must be at least 1, got \(prefillChunk)") }
        if let unixSocket, unixSocket.isEmpty { throw ValidationError("--unix-socket needs a path") }
        for (flag, seconds) in [("--header-timeout", headerTimeout), ("--body-timeout", bodyTimeout), ("--idle-timeout", idleTimeout)]
        where !(seconds > 0 && seconds <= 86_400) {
            throw ValidationError("\(flag) must be more than 0 and at most 86400 seconds, got \(seconds)")
        }
        if maxConnections < 1 { throw ValidationError("--max-connections must be at least 1, got \(maxConnections)") }
    }

    func resolvedAPIKey() throws -> String? {
        try APIKeyOption.resolve(flag: apiKey, environment: ProcessInfo.processInfo.environment)
    }

    func run() throws {
        let key = try resolvedAPIKey()
        let (gemma, loadSeconds) = try model.load()
        let engine: GemmaEngine
        do {
            engine = try GemmaEngine(model: gemma, options: GemmaEngine.Options(
                threads: model.threads ?? 0, kernels: model.makeKernels(), contextLength: model.context(for: gemma),
                maxConcurrentGenerations: parallel, prefillChunkSize: prefillChunk,
                name: modelId ?? GemmaEngine.modelName(forPath: model.model), cacheType: model.cacheType))
        } catch {
            throw CLIError.message(error.description)
        }
        let address: GemmaServerConfiguration.Address =
            unixSocket.map { .unixSocket(path: $0) } ?? .tcp(host: host, port: port)
        let server = GemmaServer(engine: engine, configuration: GemmaServerConfiguration(
            address: address, parallel: parallel, maxQueue: maxQueue, maxBodyBytes: maxBody,
            shutdownGracePeriod: .milliseconds(Int64(shutdownGrace * 1000)), defaultSampling: sampling.options,
            connectionLimits: ConnectionLimits(
                headerTimeout: .milliseconds(Int64(headerTimeout * 1000)), bodyTimeout: .milliseconds(Int64(bodyTimeout * 1000)),
                idleTimeout: .milliseconds(Int64(idleTimeout * 1000)), maxConnections: maxConnections),
            requestPolicy: RequestPolicy(allowedHosts: allowedHosts, corsOrigins: corsOrigins),
            apiKey: key, modelAliases: modelAliases))
        let exposure = NetworkExposure.warning(for: address, apiKey: key)
        if model.verbose {
            printNote(String(format: "load time: %.0f ms; context %d tokens; kernels: %@", loadSeconds * 1000,
                             engine.defaultContextLength, engine.kernels.name))
        }

        let failure = Mutex<String?>(nil)
        let done = DispatchSemaphore(value: 0)
        let verbose = model.verbose
        let id = server.modelId
        // Detached: the main thread blocks below until the server has stopped.
        Task.detached {
            do {
                try await server.run { address in
                    if let exposure { printNote(exposure) }
                    printNote("serving \(id) on \(address)" + (verbose ? " (Ctrl-C to stop)" : ""))
                }
            } catch {
                failure.withLock { $0 = "\(error)" }
            }
            await engine.shutdown()
            done.signal()
        }
        done.wait()
        if let message = failure.withLock({ $0 }) { throw CLIError.message("serve: \(message)") }
    }
}
