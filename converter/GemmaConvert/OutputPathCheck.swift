import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Refuses an output path whose replacement would destroy something, `--force` or not.
///
/// The converter renames its finished file over the output path, so an output that is one of
/// the inputs (the GGUF itself, a safetensors shard, also through a symlink or a hard link)
/// would replace the input with its own conversion, and an output that is `/dev/null`, a FIFO
/// or a socket would be replaced by a regular file (as root, `/dev/null` itself).
enum OutputPathCheck {
    /// Before anything is read: the output path is not empty, and is absent or a regular file.
    static func checkKind(output: String) throws(ConversionError) {
        guard !output.isEmpty else { throw .invalidOption("the output path (-o) is empty") }
        guard let st = status(output) else { return }  // absent (or a dangling symlink, which rename replaces)
        let kind = st.st_mode & S_IFMT
        guard kind == S_IFREG else {
            throw .output("\(output) is \(describe(kind)), not a regular file; refusing to replace it (even with --force)")
        }
    }

    /// Once the inputs are known: the output is none of them (same device and inode, links
    /// resolved).
    static func checkNotAnInput(output: String, inputs: [String]) throws(ConversionError) {
        guard let out = status(output) else { return }
        for input in inputs {
            guard let st = status(input) else { continue }
            if st.st_dev == out.st_dev && st.st_ino == out.st_ino {
                let same = input == output ? "" : " (\(input))"
                throw .output("\(output) is an input of this conversion\(same); refusing to overwrite it (even with --force): choose another output")
            }
        }
    }

    /// `stat` (following symlinks), nil when the path does not resolve to anything.
    private static func status(_ path: String) -> stat? {
        var st = stat()
        return stat(path, &st) == 0 ? st : nil
    }

    private static func describe(_ kind: mode_t) -> String {
        switch kind {
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "a special file"
        }
    }
}
