#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import GemmaKernels

/// A whole file mapped read-only. The mapping lives as long as this object.
///
/// If another process truncates the file while it is mapped, reads past the new end raise
/// SIGBUS: model files are written once and replaced by rename, never changed in place
/// (docs/FORMAT.md).
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let bytes: UnsafeRawBufferPointer
    /// Size when opened.
    public let size: Int

    public init(path: String) throws(FileAccessError) {
        self.path = path
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever;
        // this way it opens at once and is refused below like any other special file.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .cannotOpen(path: path, reason: "not a regular file") }
        size = Int(st.st_size)
        guard size > 0 else { throw .empty(path: path) }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else { throw .cannotOpen(path: path, reason: "mmap: \(String(cString: strerror(errno)))") }
        bytes = UnsafeRawBufferPointer(start: UnsafeRawPointer(p), count: size)
    }

    /// Tells the kernel the bytes of `range` (rounded outward to whole pages) will be read soon:
    /// reading them from disk starts in the background, if they are not in the page cache.
    public func adviseWillNeed(_ range: Range<Int>) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = range.lowerBound / page * page
        let end = min(size, (range.upperBound + page - 1) / page * page)
        guard end > start else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: bytes.baseAddress! + start), end - start, MADV_WILLNEED)
    }

    /// Drops the pages of `range` (rounded inward to whole pages) from this process's memory.
    public func adviseDontNeed(_ range: Range<Int>) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (range.lowerBound + page - 1) / page * page
        let end = range.upperBound / page * page
        guard end > start else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: bytes.baseAddress! + start), end - start, MADV_DONTNEED)
    }

    /// How many of the file's bytes are in memory now (page cache), or nil if the system cannot
    /// say.
    public func residentByteCount() -> Int? {
        let n = gt_resident_bytes(bytes.baseAddress, size)
        return n >= 0 ? Int(n) : nil
    }

    /// Reads the whole file in, front to back, `step` bytes at a time (each step announced to
    /// the kernel first, so that it reads ahead in large requests), so that later reads find it
    /// in memory. Calls `progress` with the bytes done after each step.
    public func readIn(step: Int = 8 << 20, progress: (Int) -> Void = { _ in }) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        var done = 0
        while done < size {
            let end = min(size, done + max(step, page))
            adviseWillNeed(done..<end)
            gt_touch_pages(bytes.baseAddress! + done, end - done, page)
            done = end
            progress(done)
        }
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: bytes.baseAddress), size)
    }
}
