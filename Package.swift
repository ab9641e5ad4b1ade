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
    ],
    dependencies: [
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
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/gemma-tiny"
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
            name: "GemmaConvertTests",
            dependencies: ["GemmaConvert", "GemmaTiny"],
            path: "Tests/GemmaConvertTests"
        ),
    ],
    swiftLanguageModes: [.v6]
)
