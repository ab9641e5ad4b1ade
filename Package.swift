// swift-tools-version:6.0
import Foundation
import PackageDescription

// Kernels are hot loops: always optimise them, even in debug builds, so tests run at a useful speed.
// No -march flags: ISA-specific paths use per-function target attributes and are chosen at run time.
let kernelFlags: [CSetting] = [.unsafeFlags(["-O2", "-fno-strict-aliasing"])]

// libgemmatiny.so exports the functions of gemma_tiny.h and nothing else (a version script), and
// carries the Swift runtime and Foundation linked statically: it needs no Swift on the machine.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
// Foundation's static archives need their C parts too, which only a build with
// --static-swift-stdlib names by itself: listed here (in one group) so that any build links.
let staticFoundationParts = ["Foundation", "FoundationEssentials", "FoundationInternationalization", "CoreFoundation",
                             "_FoundationICU", "_FoundationCollections", "_FoundationCShims"]
let cLibraryLinkFlags: [LinkerSetting] = [
    .unsafeFlags(["-static-stdlib", "-Xlinker", "--version-script=\(packageRoot)/scripts/c-abi/gemmatiny.map",
                  "-Xlinker", "--start-group"] + staticFoundationParts.flatMap { ["-Xlinker", "-l\($0)"] }
                 + ["-Xlinker", "--end-group"],
                 .when(platforms: [.linux])),
]

let package = Package(
    name: "gemma-tiny",
    products: [
        .library(name: "GemmaTiny", targets: ["GemmaTiny"]),
        .executable(name: "gemma-tiny", targets: ["gemma-tiny"]),
        .executable(name: "gemma-quantize", targets: ["gemma-quantize"]),
        // The command-line pieces gemma-tiny shares with gemma-tiny-serve (server/Package.swift).
        .library(name: "GemmaTinyCLISupport", targets: ["GemmaTinyCLISupport"]),
        // The converter as a library (used by the fuzz targets in fuzz/).
        .library(name: "GemmaConvert", targets: ["GemmaConvert"]),
        // The C ABI (include/gemma_tiny.h): scripts/build-c-library.sh installs these as
        // libgemmatiny.so and libgemmatiny.a with a gemma-tiny.pc.
        .library(name: "gemmatiny", type: .dynamic, targets: ["GemmaTinyC"]),
        .library(name: "gemmatiny-static", type: .static, targets: ["GemmaTinyC"]),
    ],
    dependencies: [
        // The only dependency: the core builds with Swift 6.0 (Debian 13). The HTTP server and its
        // SwiftNIO stack are a package of their own, server/, run by `gemma-tiny serve`.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // System libzstd (Debian: libzstd-dev).
        .systemLibrary(
            name: "CZstd",
            path: "Sources/CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        // C hot loops of the runtime: fused dequantize-dot kernels, attention and activations, CPU
        // feature detection, dequantization, checksums.
        .target(
            name: "GemmaKernels",
            path: "Sources/GemmaKernels",
            cSettings: kernelFlags
        ),
        // The runtime library: model file format, tokenizer, model, sampling, generation.
        .target(
            name: "GemmaTiny",
            dependencies: ["GemmaKernels", "CZstd"],
            path: "Sources/GemmaTiny"
        ),
        // Shared by gemma-tiny and gemma-tiny-serve: model and sampling flags, error reporting.
        .target(
            name: "GemmaTinyCLISupport",
            dependencies: [
                "GemmaTiny",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/GemmaTinyCLISupport"
        ),
        .executableTarget(
            name: "gemma-tiny",
            dependencies: [
                "GemmaTiny",
                "GemmaTinyCLISupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/gemma-tiny"
        ),
        // The C ABI's header, gemma_tiny.h (the reference for C callers), and nothing else.
        .target(
            name: "CGemmaTiny",
            path: "Sources/CGemmaTiny"
        ),
        // The C ABI's implementation: @_cdecl functions over GemmaEngine and GemmaSession.
        .target(
            name: "GemmaTinyC",
            dependencies: ["GemmaTiny", "CGemmaTiny"],
            path: "Sources/GemmaTinyC",
            linkerSettings: cLibraryLinkFlags
        ),
        // A minimal device daemon embedding the library (built by CI so the example stays correct).
        .executableTarget(
            name: "gemma-tiny-daemon-example",
            dependencies: ["GemmaTiny"],
            path: "examples/daemon",
            exclude: ["README.md"]
        ),
        // The converter's C: row quantizers (every storage type, SIMD bit-identical to the reference),
        // bf16/f16 widening and checks, GGUF row dequantization. Reads the runtime kernels' block
        // layouts (their private headers); the runtime never includes or links this.
        .target(
            name: "GemmaQuantizeKernels",
            dependencies: ["GemmaKernels"],
            path: "converter/QuantizeKernels",
            cSettings: kernelFlags + [.headerSearchPath("../../Sources/GemmaKernels")]
        ),
        // The converter: Hugging Face checkpoints -> model file.
        .target(
            name: "GemmaConvert",
            dependencies: ["GemmaTiny", "GemmaKernels", "GemmaQuantizeKernels", "CZstd"],
            path: "converter/GemmaConvert"
        ),
        .executableTarget(
            name: "gemma-quantize",
            dependencies: [
                "GemmaConvert",
                "GemmaTinyCLISupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "converter/gemma-quantize"
        ),
        .testTarget(
            name: "GemmaTinyTests",
            dependencies: ["GemmaTiny", "GemmaKernels", "GemmaQuantizeKernels", "GemmaConvert"],
            path: "Tests/GemmaTinyTests"
        ),
        .testTarget(
            name: "GemmaConvertTests",
            dependencies: ["GemmaConvert", "GemmaTiny", "GemmaQuantizeKernels"],
            path: "Tests/GemmaConvertTests"
        ),
    ],
    swiftLanguageModes: [.v6]
)
