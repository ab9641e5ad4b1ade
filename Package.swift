// swift-tools-version:6.0
import PackageDescription

// Kernels are hot loops: always optimise them, even in debug builds, so tests run at a useful speed.
// No -march flags: ISA-specific paths use per-function target attributes and are chosen at run time.
let kernelFlags: [CSetting] = [.unsafeFlags(["-O2", "-fno-strict-aliasing"])]

let package = Package(
    name: "gemma-tiny",
    products: [
        .library(name: "GemmaTiny", targets: ["GemmaTiny"]),
        .executable(name: "gemma-tiny", targets: ["gemma-tiny"]),
        .executable(name: "gemma-quantize", targets: ["gemma-quantize"]),
        // The OpenAI-compatible HTTP server behind `gemma-tiny serve`, for embedding.
        .library(name: "GemmaTinyServer", targets: ["GemmaTinyServer"]),
        // The converter as a library (used by the fuzz targets in fuzz/).
        .library(name: "GemmaConvert", targets: ["GemmaConvert"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // Server only (GemmaTinyServer, gemma-tiny serve): the GemmaTiny library depends on none of these.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // System libzstd (Debian: libzstd-dev).
        .systemLibrary(
            name: "CZstd",
            path: "Sources/CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        // C hot loops: quantization, fused dequantize-dot kernels, checksums.
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
        .executableTarget(
            name: "gemma-tiny",
            dependencies: [
                "GemmaTiny",
                "GemmaTinyServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/gemma-tiny"
        ),
        // OpenAI-compatible HTTP server (Hummingbird 2) over GemmaTiny's engine.
        .target(
            name: "GemmaTinyServer",
            dependencies: [
                "GemmaTiny",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Sources/GemmaTinyServer"
        ),
        // A minimal device daemon embedding the library (built by CI so the example stays correct).
        .executableTarget(
            name: "gemma-tiny-daemon-example",
            dependencies: ["GemmaTiny"],
            path: "examples/daemon",
            exclude: ["README.md"]
        ),
        // The converter: Hugging Face checkpoints -> model file.
        .target(
            name: "GemmaConvert",
            dependencies: ["GemmaTiny", "GemmaKernels", "CZstd"],
            path: "converter/GemmaConvert"
        ),
        .executableTarget(
            name: "gemma-quantize",
            dependencies: [
                "GemmaConvert",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "converter/gemma-quantize"
        ),
        .testTarget(
            name: "GemmaTinyTests",
            dependencies: ["GemmaTiny", "GemmaKernels", "GemmaConvert"],
            path: "Tests/GemmaTinyTests"
        ),
        .testTarget(
            name: "GemmaTinyServerTests",
            dependencies: ["GemmaTinyServer", "GemmaTiny", "GemmaConvert"],
            path: "Tests/GemmaTinyServerTests"
        ),
        .testTarget(
            name: "GemmaConvertTests",
            dependencies: ["GemmaConvert", "GemmaTiny"],
            path: "Tests/GemmaConvertTests"
        ),
    ],
    swiftLanguageModes: [.v6]
)
