/// SentencePiece's BPE segmentation (bpe_model.cc, Model::SampleEncode without dropout) and
/// the id assignment of SentencePieceProcessor::PopulateSentencePieceText.
///
/// With `llamaCpp`, llama.cpp's variant (llm_tokenizer_spm_session): the text (a fragment
/// between user-defined pieces, see LlamaCppPartition) is split into characters only, any two
/// adjacent symbols whose concatenation is a piece other than a user-defined one can merge
/// (control, unknown and byte pieces included, with their scores), a symbol that is a piece
/// becomes its id whatever its type, and UNUSED pieces are not split again. User-defined pieces
/// are left out because llama.cpp can never form them here: their text as llama.cpp has it uses
/// real spaces where the model file has ▁ (the fragment has none left), and without a space it
/// would have been cut out of the raw text already.
struct BPEEncoder: Sendable {
    let vocab: VocabularyIndex
    var llamaCpp = false

    /// Appends the ids of already-normalized text to `ids`.
    func encode(normalized: [UInt8], into ids: inout [Int]) {
        normalized.withUnsafeBufferPointer { buffer in
            guard let text = buffer.baseAddress, buffer.count > 0 else { return }
            encode(text, buffer.count, into: &ids)
        }
    }

    private func encode(_ text: UnsafePointer<UInt8>, _ length: Int, into ids: inout [Int]) {
        // Positions are Int32 to keep the symbol arrays small.
        precondition(length < Int(Int32.max), "cannot encode more than 2 GiB of text at once")
        // Symbols form a doubly linked list over the text; a merged-away symbol has length 0.
        let start = UnsafeMutablePointer<Int32>.allocate(capacity: length)
        let size = UnsafeMutablePointer<Int32>.allocate(capacity: length)
        let prev = UnsafeMutablePointer<Int32>.allocate(capacity: length)
        let next = UnsafeMutablePointer<Int32>.allocate(capacity: length)
        let frozen = UnsafeMutablePointer<Bool>.allocate(capacity: length)
        defer {
            start.deallocate(); size.deallocate(); prev.deallocate(); next.deallocate(); frozen.deallocate()
        }

        // Split into characters; a user-defined piece is one frozen symbol.
        let llamaCpp = self.llamaCpp
        var n = 0
        var pos = 0
        while pos < length {
            let match = llamaCpp ? 0 : vocab.userDefined.longestMatch(text + pos, length - pos).length
            let len = match > 0 ? match : min(length - pos, utf8Length(leadByte: text[pos]))
            start[n] = Int32(pos)
            size[n] = Int32(len)
            frozen[n] = match > 0
            prev[n] = Int32(n - 1)
            n += 1
            pos += len
            next[n - 1] = pos < length ? Int32(n) : -1
        }

        // For UNUSED pieces: the two symbols that form them, to split them again at the end.
        // Like SentencePiece, keyed by piece and overwritten by the most recent candidate.
        var unusedSplit: [Int32: (start: Int32, leftSize: Int32, rightSize: Int32)] = [:]
        var queue = MergeQueue(capacity: n)
        let scores = vocab.scores
        let types = vocab.types
        let normal = vocab.normal

        // llama.cpp looks up every piece but a user-defined one (see above).
        func llamaCppLookup(_ p: UnsafePointer<UInt8>, _ len: Int) -> Int32 {
            let id = vocab.lookup(p, len)
            return id >= 0 && types[Int(id)] != .userDefined ? id : -1
        }

        func addCandidate(_ left: Int32, _ right: Int32) {
            guard left >= 0, right >= 0, !frozen[Int(left)], !frozen[Int(right)] else { return }
            let merged = size[Int(left)] + size[Int(right)]
            let p = text + Int(start[Int(left)])
            let id = llamaCpp ? llamaCppLookup(p, Int(merged)) : normal.lookup(p, Int(merged))
            guard id >= 0 else { return }
            queue.push(MergeCandidate(score: scores[Int(id)], left: left, right: right, size: merged))
            if !llamaCpp && types[Int(id)] == .unused {
                unusedSplit[id] = (start[Int(left)], size[Int(left)], size[Int(right)])
            }
        }

        var i: Int32 = 1
        while i < Int32(n) {
            addCandidate(i - 1, i)
            i += 1
        }

        while !queue.isEmpty {
            let top = queue.pop()
            let l = Int(top.left), r = Int(top.right)
            // Stale: one side was merged into something else since this candidate was queued.
            if size[l] == 0 || size[r] == 0 || size[l] + size[r] != top.size { continue }
            size[l] = top.size
            next[l] = next[r]
            if next[r] >= 0 { prev[Int(next[r])] = top.left }
            size[r] = 0
            addCandidate(prev[l], top.left)
            addCandidate(top.left, next[l])
        }

        var emitter = IdEmitter(vocab: vocab)
        // Emits a symbol; an UNUSED piece is replaced by the two symbols it was merged from.
        func emit(_ s: Int32, _ len: Int32) {
            if llamaCpp {
                let id = llamaCppLookup(text + Int(s), Int(len))
                if id >= 0 {
                    emitter.appendPiece(id, into: &ids)
                } else {
                    emitter.append(-1, text + Int(s), Int(len), into: &ids)
                }
                return
            }
            let id = vocab.lookup(text + Int(s), Int(len))
            if id >= 0, types[Int(id)] == .unused, let split = unusedSplit[id] {
                emit(split.start, split.leftSize)
                emit(split.start + split.leftSize, split.rightSize)
                return
            }
            emitter.append(id, text + Int(s), Int(len), into: &ids)
        }
        var index: Int32 = 0
        while index >= 0 {
            emit(start[Int(index)], size[Int(index)])
            index = next[Int(index)]
        }
    }
}

/// Turns segmented symbols into ids: a symbol that is not a piece becomes its bytes' `<0xNN>`
/// pieces with byte fallback, otherwise the unknown id, with a run of unknowns collapsed into one.
private struct IdEmitter {
    let vocab: VocabularyIndex
    var previousWasUnknown = false

    /// A piece's id as it is, whatever its type (llama.cpp's rule).
    mutating func appendPiece(_ id: Int32, into ids: inout [Int]) {
        ids.append(Int(id))
        previousWasUnknown = false
    }

    mutating func append(_ found: Int32, _ p: UnsafePointer<UInt8>, _ length: Int, into ids: inout [Int]) {
        let id = found >= 0 ? found : vocab.unknownId
        let isUnknown = vocab.types[Int(id)] == .unknown
        defer { previousWasUnknown = isUnknown }
        if isUnknown && vocab.byteFallback {
            for k in 0..<length { ids.append(Int(vocab.byteIds[Int(p[k])])) }
        } else if isUnknown && previousWasUnknown {
            return  // merged into the previous unknown piece
        } else {
            ids.append(Int(id))
        }
    }
}
