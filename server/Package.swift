// swift-tools-version:6.2
// The OpenAI-compatible HTTP server (Hummingbird 2 on SwiftNIO): the GemmaTinyServer library and
// the gemma-tiny-serve executable, which `gemma-tiny serve` runs. A package of its own so that the
// core package (..) builds with Swift 6.0 and daemons embedding GemmaTiny never pull in SwiftNIO;
// swift-tools 6.2 because swift-log and swift-service-lifecycle need it.
//   swift build -c release --package-path server     (then put gemma-tiny-serve beside gemma-tiny)
import Foundation
import PackageDescription

// A path dependency's identity is its folder's name: whatever the checkout is called.
let corePackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "gemma-tiny-server",
    products: [
        // The server for embedding (the library behind gemma-tiny-serve).
        .library(name: "GemmaTinyServer", targets: ["GemmaTinyServer"]),
        .executable(name: "gemma-tiny-serve", targets: ["gemma-tiny-serve"]),
    ],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // OpenAI-compatible HTTP server (Hummingbird 2) over GemmaTiny's engine.
        .target(
            name: "GemmaTinyServer",
            dependencies: [
                .product(name: "GemmaTiny", package: corePackage),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                // The request/response parts the connection guard watches (ConnectionGuard.swift).
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Sources/GemmaTinyServer"
        ),
        // The serve command (also run as `gemma-tiny serve`).
        .executableTarget(
            name: "gemma-tiny-serve",
            dependencies: [
                "GemmaTinyServer",
                .product(name: "GemmaTiny", package: corePackage),
                .product(name: "GemmaTinyCLISupport", package: corePackage),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/gemma-tiny-serve"
        ),
        .testTarget(
            name: "GemmaTinyServerTests",
            dependencies: [
                "GemmaTinyServer",
                .product(name: "GemmaTiny", package: corePackage),
                .product(name: "GemmaConvert", package: corePackage),
            ],
            path: "Tests/GemmaTinyServerTests"
        ),
    ],
    swiftLanguageModes: [.v6]
)
