import Foundation

/// The memory this process can still use: MemAvailable from /proc/meminfo, and the headroom left
/// under the memory limit of its cgroup (v1 or v2, the process's cgroup and every ancestor); the
/// smaller wins.
///
/// Everything is read below `root` ("/" on a real machine; tests pass a folder laid out like one).
/// Missing or unreadable files, "max" and v1's "unlimited" value (9223372036854771712) mean no
/// limit; nothing here throws or traps on odd file content.
public struct MemoryAvailability: Sendable, Equatable {
    /// The cgroup limit that leaves the least headroom.
    public struct CgroupLimit: Sendable, Equatable {
        /// 1 or 2.
        public var version: Int
        /// The cgroup the limit is set on, as /proc/self/cgroup names it ("/" for the root).
        public var path: String
        public var limit: Int
        /// Memory charged to it that cannot simply be dropped: usage minus inactive file pages
        /// (page cache the kernel reclaims first, as `docker stats` and the kubelet count it).
        public var used: Int

        public var headroom: Int { max(0, limit - used) }
    }

    /// MemAvailable (bytes); nil when /proc/meminfo has none.
    public var memAvailable: Int?
    /// nil when no cgroup memory limit applies.
    public var cgroup: CgroupLimit?

    public init(memAvailable: Int?, cgroup: CgroupLimit?) {
        self.memAvailable = memAvailable
        self.cgroup = cgroup
    }

    /// What the process can use; nil when nothing is known (then no check is possible).
    public var bytes: Int? {
        switch (memAvailable, cgroup?.headroom) {
        case let (m?, c?): return min(m, c)
        case let (m?, nil): return m
        case let (nil, c?): return c
        case (nil, nil): return nil
        }
    }

    /// "cgroup v1 memory limit 1.8 GiB on /fit-test, 48.0 MiB in use; MemAvailable 22.4 GiB".
    public var explanation: String {
        var parts: [String] = []
        if let c = cgroup {
            parts.append("cgroup v\(c.version) memory limit \(ByteCountText.format(c.limit)) on \(c.path), \(ByteCountText.format(c.used)) in use")
        }
        if let m = memAvailable { parts.append("MemAvailable \(ByteCountText.format(m))") }
        return parts.isEmpty ? "nothing known" : parts.joined(separator: "; ")
    }

    /// Reads the machine (or the tree under `root`).
    public static func read(root: String = "/") -> MemoryAvailability {
        let reader = FileReader(root: root)
        let memAvailable = reader.text("proc/meminfo").flatMap(parseMemAvailable)
        let membership = reader.text("proc/self/cgroup").map(parseCgroupMembership) ?? CgroupMembership()
        return MemoryAvailability(memAvailable: memAvailable, cgroup: tightestCgroupLimit(membership, reader: reader))
    }

    // MARK: - Parsing (internal for tests)

    /// The process's memory cgroup: the v1 "memory" controller's path and the v2 path.
    struct CgroupMembership: Equatable {
        var v1Memory: String?
        var v2: String?
    }

    /// MemAvailable from /proc/meminfo text ("MemAvailable:   123 kB"), in bytes.
    static func parseMemAvailable(_ text: String) -> Int? {
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("MemAvailable:") {
            let fields = line.dropFirst("MemAvailable:".count).split(whereSeparator: \.isWhitespace)
            guard let first = fields.first, let value = Int(first), value >= 0 else { return nil }
            let unit = fields.count > 1 ? fields[1].lowercased() : ""
            switch unit {
            case "kb": return value.multipliedReportingOverflow(by: 1024).overflow ? nil : value * 1024
            case "", "b": return value
            default: return nil
            }
        }
        return nil
    }

    /// /proc/self/cgroup: "ID:controllers:path" lines; v1's memory line names "memory" among
    /// its controllers, v2's line is "0::path".
    static func parseCgroupMembership(_ text: String) -> CgroupMembership {
        var result = CgroupMembership()
        for line in text.split(whereSeparator: \.isNewline) {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3, fields[2].hasPrefix("/") else { continue }
            let path = String(fields[2])
            if fields[0] == "0" && fields[1].isEmpty {
                result.v2 = path
            } else if fields[1].split(separator: ",").contains("memory") {
                result.v1Memory = path
            }
        }
        return result
    }

    /// A limit or usage file's value in bytes; nil for "max", v1's "unlimited" (anything from
    /// 2^62 up: the kernel writes PAGE_COUNTER_MAX pages, 9223372036854771712 with 4 KiB pages),
    /// and anything that is not a non-negative number.
    static func parseBytes(_ text: String) -> Int? {
        let value = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard value != "max", let n = Int(value), n >= 0, n < unlimitedThreshold else { return nil }
        return n
    }

    static let unlimitedThreshold = 1 << 62

    /// One "key value" line of a memory.stat file.
    static func parseStat(_ text: String, key: String) -> Int? {
        for line in text.split(whereSeparator: \.isNewline) {
            let fields = line.split(whereSeparator: \.isWhitespace)
            if fields.count == 2, fields[0] == key, let n = Int(fields[1]), n >= 0 { return n }
        }
        return nil
    }

    /// The limit, among the process's cgroup and its ancestors, with the least headroom.
    /// v1 is used when the memory controller is mounted there, else v2.
    static func tightestCgroupLimit(_ membership: CgroupMembership, reader: FileReader) -> CgroupLimit? {
        let layout: (version: Int, mount: String, path: String, limit: String, usage: String, inactive: String)
        if let path = membership.v1Memory, reader.exists("sys/fs/cgroup/memory") {
            layout = (1, "sys/fs/cgroup/memory", path, "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        } else if let path = membership.v2, reader.exists("sys/fs/cgroup/cgroup.controllers") {
            layout = (2, "sys/fs/cgroup", path, "memory.max", "memory.current", "inactive_file")
        } else {
            return nil
        }
        var tightest: CgroupLimit?
        // "/a/b" -> "/a/b", "/a", "/". A folder that does not exist (another cgroup namespace)
        // has no files, so it sets no limit.
        var components = layout.path.split(separator: "/").map(String.init)
        while true {
            let path = "/" + components.joined(separator: "/")
            let dir = layout.mount + path
            if let limit = reader.text(dir + "/" + layout.limit).flatMap(parseBytes) {
                let usage = reader.text(dir + "/" + layout.usage).flatMap(parseBytes) ?? 0
                let inactive = reader.text(dir + "/memory.stat").flatMap { parseStat($0, key: layout.inactive) } ?? 0
                let candidate = CgroupLimit(version: layout.version, path: path, limit: limit, used: max(0, usage - inactive))
                if tightest.map({ candidate.headroom < $0.headroom }) ?? true { tightest = candidate }
            }
            if components.isEmpty { break }
            components.removeLast()
        }
        return tightest
    }

    /// Reads small text files below a root folder; nil for anything missing or unreadable.
    struct FileReader {
        var root: String

        func url(_ relative: String) -> URL {
            URL(fileURLWithPath: root).appendingPathComponent(relative)
        }

        func text(_ relative: String) -> String? {
            // /proc and cgroup files report size 0: read to the end rather than by size.
            guard let handle = FileHandle(forReadingAtPath: url(relative).path) else { return nil }
            defer { try? handle.close() }
            guard let data = try? handle.readToEnd(), data.count < 1 << 20 else { return nil }
            return String(decoding: data, as: UTF8.self)
        }

        func exists(_ relative: String) -> Bool {
            FileManager.default.fileExists(atPath: url(relative).path)
        }
    }
}

/// "1.75 GiB", "48.0 MiB": byte counts as the warnings print them (GiB with two decimals: a
/// 1.75 GiB limit should not read as 1.8).
enum ByteCountText {
    static func format(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(n) B" : String(format: unit >= 3 ? "%.2f %@" : "%.1f %@", value, units[unit])
    }
}
