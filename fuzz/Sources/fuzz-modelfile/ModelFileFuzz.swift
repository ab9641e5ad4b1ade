// Fuzz target: opening and validating a model file (.gtm) from arbitrary bytes.
//
// ModelFile only opens paths, so each input is written to a scratch file in /dev/shm.
// Checksums would stop almost every mutation at the header, so unless bit 7 of header byte 15
// (the top byte of the reserved flags word, which readers ignore) is set, the harness rewrites
// the file length, the sections checksum and the header checksum to match the mutated bytes:
// the fuzzer then reaches the metadata, tokenizer, tensor-table and zstd-frame validation.
//
// GEMMA_FUZZ_WRITE_SEEDS=DIR writes the seed corpus (small valid files) to DIR and exits.
import Foundation
import FuzzSupport
import GemmaKernels
import GemmaTiny
import GemmaConvert

@main enum Main {
    static func main() {
        if let dir = ProcessInfo.processInfo.environment["GEMMA_FUZZ_WRITE_SEEDS"] {
            do { try writeSeeds(dir) } catch { fatalError("writing seeds: \(error)") }
            exit(0)
        }
        FuzzSupport.runLibFuzzer(fuzzModelFile)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzModelFile(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    var bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if bytes.count >= FileHeader.size, bytes[0..<8].elementsEqual(FileHeader.magic), bytes[15] & 0x80 == 0 {
        fixChecksums(&bytes)
    }
    let path = bytes.withUnsafeBytes { FuzzSupport.scratchFile($0, name: "model.gtm") }
    guard let file = try? ModelFile(path: path) else { return 0 }

    // Every tensor lies inside the data section.
    let section = file.header.data
    var total = 0
    for t in file.tensors {
        FuzzSupport.check(t.offset >= 0 && t.storedLength >= 0 && t.offset + t.storedLength <= section.count,
                          "tensor \(t.name) [\(t.offset), +\(t.storedLength)) outside the \(section.count)-byte data section")
        FuzzSupport.check(file.tensor(t.name) != nil, "tensor \(t.name) not indexed")
        let stored = file.storedBytes(t)
        if let first = stored.first, let last = stored.last { total &+= Int(first) &+ Int(last) }
        total += t.length
    }
    // Zstd frames: walked and decompressed (bounded: skip absurd totals).
    if total <= 64 << 20 {
        for t in file.tensors where t.length > 0 {
            var buffer = [UInt8](repeating: 0, count: t.length)
            buffer.withUnsafeMutableBytes { dst in _ = try? file.unpack(t, into: dst) }
            _ = try? file.data(t)
        }
        try? file.verify()
    }
    // The vocabulary and settings in the file feed the tokenizer.
    if let tokenizer = try? Tokenizer(vocabulary: file.vocabulary, settings: file.metadata.tokenizer) {
        FuzzSupport.exercise(tokenizer)
    }
    return 0
}

/// Makes the header's file length and both checksums agree with `bytes` (when the section
/// ranges lie inside the input; otherwise only the header checksum).
func fixChecksums(_ bytes: inout [UInt8]) {
    func u64(_ at: Int) -> UInt64 { bytes[at..<at + 8].reversed().reduce(0) { $0 << 8 | UInt64($1) } }
    func put(_ v: UInt64, _ at: Int) { for i in 0..<8 { bytes[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) } }
    put(UInt64(bytes.count), 80)
    var ranges: [Range<Int>] = []
    for s in 0..<3 {
        let offset = u64(16 + 16 * s), length = u64(24 + 16 * s)
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow, end <= UInt64(bytes.count) else { ranges = []; break }
        ranges.append(Int(offset)..<Int(end))
    }
    bytes.withUnsafeMutableBytes { b in
        if ranges.count == 3 {
            var state = gt_xxh64_state()
            gt_xxh64_reset(&state, 0)
            for r in ranges { gt_xxh64_update(&state, b.baseAddress! + r.lowerBound, r.count) }
            let sum = gt_xxh64_digest(&state)
            for i in 0..<8 { b[88 + i] = UInt8(truncatingIfNeeded: sum >> (8 * UInt64(i))) }
        }
        let sum = gt_xxh64(b.baseAddress, 120, 0)
        for i in 0..<8 { b[120 + i] = UInt8(truncatingIfNeeded: sum >> (8 * UInt64(i))) }
    }
}

/// Seeds: small valid files with uncompressed and zstd tensors, one with a toy vocabulary and one
/// with the fixture tokenizer's 2048 pieces; each as format version 1 (f32, bf16, q8, q4) and,
/// `-v3`, version 3 (q5, q4k and q6k as well).
func writeSeeds(_ dir: String) throws {
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let toy = TokenizerVocabulary(
        pieces: ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "a", "b", "▁", "ab", "<0x41>", "\n"],
        scores: [0, 0, 0, 0, 0, 0, -1, -2, -3, -4, 0, 0],
        types: [.control, .control, .control, .unknown, .control, .control, .normal, .normal, .normal, .normal, .byte, .userDefined])
    let settings = TokenizerSettings(model: "bpe", bosId: 2, eosId: 1, padId: 0, unkId: 3, addDummyPrefix: false,
                                     removeExtraWhitespaces: false, escapeWhitespaces: true, byteFallback: true,
                                     normalizer: "identity")
    let fixtureTokenizer = FuzzSupport.repositoryRoot + "/fixtures/tiny-gemma/tokenizer.model"
    let (fixtureVocab, fixtureSettings) = try SentencePieceModelReader.read(path: fixtureTokenizer)
    for (base, vocab, tokenizerSettings, compress) in [("toy-plain", toy, settings, false), ("toy-zstd", toy, settings, true),
                                                       ("fixture-vocab-zstd", fixtureVocab, fixtureSettings, true)] {
    for allTypes in [false, true] {
        let name = base + (allTypes ? "-v3" : "")
        let metadata = ModelMetadata(
            config: ModelConfig(architecture: .gemma, vocabSize: vocab.count, hiddenSize: 64, intermediateSize: 128,
                                numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 1, headDim: 32,
                                maxPositionEmbeddings: 64, rmsNormEps: 1e-6, ropeTheta: 10000,
                                hiddenActivation: "gelu_pytorch_tanh", embeddingScale: 8),
            tokenizer: tokenizerSettings,
            quantization: QuantizationInfo(type: .q4, embeddingType: .q8, blockSize: 32, zstdLevel: 3),
            provenance: Provenance(tool: "fuzz seed", sourceFormat: "test", sourceArchitecture: "GemmaForCausalLM",
                                   sourceDtype: "bfloat16", sourceFiles: [.init(name: "x", size: 1)]))
        let writer = try ModelFileWriter(destination: "\(dir)/\(name).gtm", metadata: metadata, vocabulary: vocab, overwrite: true)
        var seed: UInt64 = 7
        func bytes(_ n: Int) -> [UInt8] {
            (0..<n).map { i in seed = seed &* 6364136223846793005 &+ 1442695040888963407; return i % 3 == 0 ? UInt8(truncatingIfNeeded: seed >> 56) : 0 }
        }
        let tensors: [(String, StorageType, [Int], [UInt8])] = [
            ("model.norm.weight", .f32, [64], bytes(256)),
            ("model.embed_tokens.weight", .q8, [2, 64], bytes(2 * 68)),
            ("model.layers.0.mlp.up_proj.weight", .q4, [4, 64], bytes(4 * 36)),
            ("model.layers.0.mlp.down_proj.weight", .bf16, [2, 64], bytes(2 * 128)),
        ] + (allTypes ? [
            ("model.layers.0.mlp.gate_proj.weight", .q5, [2, 64], bytes(2 * 44)),
            ("model.layers.0.self_attn.q_proj.weight", .q4k, [2, 256], bytes(2 * 144)),
            ("model.layers.0.self_attn.o_proj.weight", .q6k, [1, 256], bytes(210)),
        ] : [])
        for (tname, type, shape, data) in tensors {
            let checksum = data.withUnsafeBytes { gt_xxh64($0.baseAddress, $0.count, 0) }
            if compress && type != .f32 {
                try writer.beginTensor(name: tname, type: type, shape: shape, compression: .zstd)
                // Two frames for the q8 tensor, so frame walking is exercised.
                let cut = type == .q8 ? data.count / 2 : data.count
                for chunk in [Array(data[..<cut]), Array(data[cut...])] where !chunk.isEmpty {
                    let frame = try chunk.withUnsafeBytes { try ZstdFrames.compressFrame($0, level: 3) }
                    try frame.withUnsafeBytes { try writer.append($0) }
                }
                try writer.endTensor(length: data.count, checksum: checksum)
            } else {
                try data.withUnsafeBytes { try writer.addTensor(name: tname, type: type, shape: shape, bytes: $0) }
            }
        }
        try writer.finish()
        _ = try ModelFile(path: "\(dir)/\(name).gtm")  // the seed itself must be valid
    }
    }
}
