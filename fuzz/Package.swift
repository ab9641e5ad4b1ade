// swift-tools-version:6.0
// libFuzzer targets for gemma-tiny's untrusted-input parsers. A separate package so the main
// package's `swift build` is unaffected. Build and run with scripts/fuzz.sh (docs/RELIABILITY.md):
//   swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -enable-testing
// (-enable-testing: the converter's readers are internal and are reached by @testable import.)
import Foundation
import PackageDescription

// A path dependency's identity is its folder's name: whatever the checkout is called.
let mainPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent
let gemmaTiny: Target.Dependency = .product(name: "GemmaTiny", package: mainPackage)
let gemmaConvert: Target.Dependency = .product(name: "GemmaConvert", package: mainPackage)

let package = Package(
    name: "gemma-tiny-fuzz",
    dependencies: [.package(path: "..")],
    targets: [
        .target(name: "FuzzSupport", dependencies: [gemmaTiny, gemmaConvert]),
        .executableTarget(name: "fuzz-modelfile", dependencies: ["FuzzSupport", gemmaTiny, gemmaConvert]),
        .executableTarget(name: "fuzz-safetensors", dependencies: ["FuzzSupport", gemmaConvert]),
        .executableTarget(name: "fuzz-gguf", dependencies: ["FuzzSupport", gemmaTiny, gemmaConvert]),
        .executableTarget(name: "fuzz-tokenizer", dependencies: ["FuzzSupport", gemmaTiny]),
        .executableTarget(name: "fuzz-chat", dependencies: ["FuzzSupport", gemmaTiny]),
        .executableTarget(name: "fuzz-spmodel", dependencies: ["FuzzSupport", gemmaTiny, gemmaConvert]),
        .executableTarget(name: "fuzz-schema", dependencies: ["FuzzSupport", gemmaTiny]),
    ],
    swiftLanguageModes: [.v6]
)
