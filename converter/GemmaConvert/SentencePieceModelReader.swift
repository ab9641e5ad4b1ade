import Foundation
import GemmaTiny

/// A tokenizer.model that cannot be read. The description is one line: file, then problem.
public struct SentencePieceModelError: Error, Equatable, CustomStringConvertible, Sendable {
    public var file: String
    public var problem: String

    public init(file: String, problem: String) {
        self.file = file
        self.problem = problem
    }

    public var description: String { "\(file): \(problem)" }
}

/// Reads a SentencePiece `tokenizer.model` (a serialized sentencepiece.ModelProto) into the
/// vocabulary and settings the model file stores. The protobuf wire format is parsed by hand,
/// with every length checked, so malformed input throws instead of crashing.
///
/// Field numbers are those of sentencepiece_model.proto:
///   ModelProto      1 pieces, 2 trainer_spec, 3 normalizer_spec, 5 denormalizer_spec
///   SentencePiece   1 piece, 2 score, 3 type
///   TrainerSpec     3 model_type, 24 treat_whitespace_as_suffix, 35 byte_fallback,
///                   40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id, 44 unk_surface
///   NormalizerSpec  1 name, 2 precompiled_charsmap, 3 add_dummy_prefix,
///                   4 remove_extra_whitespaces, 5 escape_whitespaces
public enum SentencePieceModelReader {
    public static func read(path: String) throws(SentencePieceModelError) -> (TokenizerVocabulary, TokenizerSettings) {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw SentencePieceModelError(file: path, problem: "cannot read: \(error.localizedDescription)")
        }
        return try read(bytes: [UInt8](data), name: path)
    }

    /// `name` only labels errors.
    public static func read(bytes: [UInt8], name: String = "tokenizer.model") throws(SentencePieceModelError) -> (TokenizerVocabulary, TokenizerSettings) {
        do {
            return try parse(bytes)
        } catch {
            throw SentencePieceModelError(file: name, problem: error.message)
        }
    }

    // Limits of the model file's tokenizer section.
    static let maxPieces = 1 << 22
    static let maxPieceBytes = 65535
    static let defaultUnknownSurface = " \u{2047} "

    private static func parse(_ bytes: [UInt8]) throws(ProtoError) -> (TokenizerVocabulary, TokenizerSettings) {
        guard !bytes.isEmpty else { throw ProtoError("file is empty") }
        var vocabulary = TokenizerVocabulary(pieces: [], scores: [], types: [])
        var trainer = TrainerSpec()
        var normalizer = NormalizerSpec()
        var denormalizerCharsmap = false
        var r = ProtoReader(bytes, 0..<bytes.count, context: "ModelProto")
        while let (field, wire) = try r.nextField() {
            switch field {
            case 1:
                guard vocabulary.count < maxPieces else { throw ProtoError("more than \(maxPieces) pieces") }
                let piece = try parsePiece(try r.message(field, wire), index: vocabulary.count, bytes)
                vocabulary.pieces.append(piece.text)
                vocabulary.scores.append(piece.score)
                vocabulary.types.append(piece.type)
            case 2: try trainer.merge(try r.message(field, wire), bytes)
            case 3: try normalizer.merge(try r.message(field, wire), bytes)
            case 5:
                var d = NormalizerSpec()
                try d.merge(try r.message(field, wire), bytes)
                if !d.charsmapEmpty { denormalizerCharsmap = true }
            default: try r.skip(wire)
            }
        }
        guard vocabulary.count > 0 else { throw ProtoError("no pieces (not a SentencePiece model?)") }

        // Options the stored settings cannot express are refused rather than silently dropped.
        if trainer.treatWhitespaceAsSuffix { throw ProtoError("unsupported: treat_whitespace_as_suffix is true") }
        if denormalizerCharsmap { throw ProtoError("unsupported: denormalizer_spec has a precompiled_charsmap") }
        if let surface = trainer.unknownSurface, surface != defaultUnknownSurface {
            throw ProtoError("unsupported: unk_surface is \(surface.debugDescription), not the default")
        }
        let model: String
        switch trainer.modelType {
        case 1: model = "unigram"
        case 2: model = "bpe"
        case 3: model = "word"
        case 4: model = "char"
        default: throw ProtoError("unknown model_type \(trainer.modelType)")
        }
        // Normalization is done by the precompiled map; without one, text passes unchanged
        // whatever the rule is called.
        let rule: String
        if normalizer.charsmapEmpty {
            rule = "identity"
        } else {
            rule = normalizer.name.isEmpty || normalizer.name == "identity" ? "precompiled" : normalizer.name
        }
        let settings = TokenizerSettings(
            model: model, bosId: Int(trainer.bosId), eosId: Int(trainer.eosId), padId: Int(trainer.padId),
            unkId: Int(trainer.unkId), addDummyPrefix: normalizer.addDummyPrefix,
            removeExtraWhitespaces: normalizer.removeExtraWhitespaces, escapeWhitespaces: normalizer.escapeWhitespaces,
            byteFallback: trainer.byteFallback, normalizer: rule)
        return (vocabulary, settings)
    }

    private static func parsePiece(_ range: Range<Int>, index: Int, _ bytes: [UInt8]) throws(ProtoError)
        -> (text: String, score: Float, type: TokenizerVocabulary.PieceType) {
        var r = ProtoReader(bytes, range, context: "piece \(index)")
        var text: String? = nil
        var score: Float = 0
        var type = TokenizerVocabulary.PieceType.normal
        while let (field, wire) = try r.nextField() {
            switch field {
            case 1: text = try r.string(field, wire)
            case 2: score = try r.float(field, wire)
            case 3:
                let raw = try r.varint(field, wire)
                guard raw <= 6, raw >= 1, let t = TokenizerVocabulary.PieceType(rawValue: UInt8(raw)) else {
                    throw ProtoError("piece \(index) has unknown type \(Int64(bitPattern: raw))")
                }
                type = t
            default: try r.skip(wire)
            }
        }
        guard let text, !text.isEmpty else { throw ProtoError("piece \(index) is empty") }
        guard text.utf8.count <= maxPieceBytes else { throw ProtoError("piece \(index) is longer than \(maxPieceBytes) bytes") }
        guard score.isFinite else { throw ProtoError("piece \(index) (\(text.debugDescription)) has score \(score)") }
        return (text, score, type)
    }
}

/// TrainerSpec fields that affect encoding, with sentencepiece_model.proto's defaults.
private struct TrainerSpec {
    var modelType: UInt64 = 1
    var treatWhitespaceAsSuffix = false
    var byteFallback = false
    var unkId: Int32 = 0
    var bosId: Int32 = 1
    var eosId: Int32 = 2
    var padId: Int32 = -1
    var unknownSurface: String? = nil

    mutating func merge(_ range: Range<Int>, _ bytes: [UInt8]) throws(ProtoError) {
        var r = ProtoReader(bytes, range, context: "trainer_spec")
        while let (field, wire) = try r.nextField() {
            switch field {
            case 3: modelType = try r.varint(field, wire)
            case 24: treatWhitespaceAsSuffix = try r.varint(field, wire) != 0
            case 35: byteFallback = try r.varint(field, wire) != 0
            case 40: unkId = try r.int32(field, wire)
            case 41: bosId = try r.int32(field, wire)
            case 42: eosId = try r.int32(field, wire)
            case 43: padId = try r.int32(field, wire)
            case 44: unknownSurface = try r.string(field, wire)
            default: try r.skip(wire)
            }
        }
    }
}

/// NormalizerSpec, with sentencepiece_model.proto's defaults.
private struct NormalizerSpec {
    var name = ""
    var charsmapEmpty = true
    var addDummyPrefix = true
    var removeExtraWhitespaces = true
    var escapeWhitespaces = true

    mutating func merge(_ range: Range<Int>, _ bytes: [UInt8]) throws(ProtoError) {
        var r = ProtoReader(bytes, range, context: "normalizer_spec")
        while let (field, wire) = try r.nextField() {
            switch field {
            case 1: name = try r.string(field, wire)
            case 2: charsmapEmpty = try r.message(field, wire).isEmpty
            case 3: addDummyPrefix = try r.varint(field, wire) != 0
            case 4: removeExtraWhitespaces = try r.varint(field, wire) != 0
            case 5: escapeWhitespaces = try r.varint(field, wire) != 0
            default: try r.skip(wire)
            }
        }
    }
}
