import Foundation
@testable import GemmaTiny
import XCTest

/// `MemoryAvailability` on fixture trees laid out like / (proc/meminfo, proc/self/cgroup, the
/// cgroup files): v1 and v2, limits on an ancestor, unlimited values, missing and odd files.
final class MemoryAvailabilityTests: XCTestCase {
    static let gib = FakeMemoryRoot.gib, mib = FakeMemoryRoot.mib

    func makeRoot(_ files: [String: String]) throws -> String { try FakeMemoryRoot.make(files, for: self) }

    static func meminfo(availableKB: Int) -> String { FakeMemoryRoot.meminfo(available: availableKB * 1024) }

    static let v1Cgroup = """
        9:name=systemd:/
        5:devices:/
        4:memory:/jobs/job7
        1:cpu:/
        0::/

        """

    func testMemAvailableParsing() {
        XCTAssertEqual(MemoryAvailability.parseMemAvailable(Self.meminfo(availableKB: 1_000_000)), 1_000_000 * 1024)
        XCTAssertNil(MemoryAvailability.parseMemAvailable("MemTotal: 100 kB\nMemFree: 50 kB\n"), "no MemAvailable line")
        XCTAssertNil(MemoryAvailability.parseMemAvailable("MemAvailable: lots kB\n"))
        XCTAssertNil(MemoryAvailability.parseMemAvailable("MemAvailable: 12 MB\n"), "unknown unit")
        XCTAssertNil(MemoryAvailability.parseMemAvailable("MemAvailable: 9223372036854775807 kB\n"), "overflows")
        XCTAssertNil(MemoryAvailability.parseMemAvailable(""))
        XCTAssertEqual(MemoryAvailability.parseMemAvailable("MemAvailable:\t42\n"), 42, "no unit: bytes")
    }

    func testCgroupMembershipParsing() {
        let v1 = MemoryAvailability.parseCgroupMembership(Self.v1Cgroup)
        XCTAssertEqual(v1.v1Memory, "/jobs/job7")
        XCTAssertEqual(v1.v2, "/")
        let v2 = MemoryAvailability.parseCgroupMembership("0::/user.slice/user-0.slice/session-3.scope\n")
        XCTAssertNil(v2.v1Memory)
        XCTAssertEqual(v2.v2, "/user.slice/user-0.slice/session-3.scope")
        // Controllers mounted together; a path with a colon in it.
        let combined = MemoryAvailability.parseCgroupMembership("3:cpu,memory,pids:/a:b\n")
        XCTAssertEqual(combined.v1Memory, "/a:b")
        // Nonsense lines are skipped, not trusted.
        let odd = MemoryAvailability.parseCgroupMembership("garbage\n4:memory\n::\n5:memory:relative\n\u{0}\u{1}:memory:/x\n")
        XCTAssertEqual(odd, MemoryAvailability.CgroupMembership(v1Memory: "/x", v2: nil))
        XCTAssertEqual(MemoryAvailability.parseCgroupMembership(""), MemoryAvailability.CgroupMembership())
    }

    func testLimitValues() {
        XCTAssertEqual(MemoryAvailability.parseBytes("1879048192\n"), 1_879_048_192)
        XCTAssertNil(MemoryAvailability.parseBytes("max\n"), "v2 unlimited")
        XCTAssertNil(MemoryAvailability.parseBytes("9223372036854771712\n"), "v1 unlimited")
        XCTAssertNil(MemoryAvailability.parseBytes("9223372036854775807"))
        XCTAssertNil(MemoryAvailability.parseBytes("-1"))
        XCTAssertNil(MemoryAvailability.parseBytes(""))
        XCTAssertNil(MemoryAvailability.parseBytes("12 kB"))
        XCTAssertNil(MemoryAvailability.parseBytes("99999999999999999999999"), "beyond Int")
        XCTAssertEqual(MemoryAvailability.parseStat("cache 5\ninactive_file 7\ntotal_inactive_file 9\n", key: "inactive_file"), 7)
        XCTAssertNil(MemoryAvailability.parseStat("inactive_file x\n", key: "inactive_file"))
    }

    /// v1: the limit is on the parent of the process's cgroup; usage minus inactive file pages.
    func testV1LimitOnAnAncestor() throws {
        let base = "sys/fs/cgroup/memory"
        let root = try makeRoot([
            "proc/meminfo": Self.meminfo(availableKB: 8 * 1024 * 1024),
            "proc/self/cgroup": Self.v1Cgroup,
            "\(base)/memory.limit_in_bytes": "9223372036854771712\n",
            "\(base)/memory.usage_in_bytes": "\(5 * Self.gib)\n",
            "\(base)/jobs/memory.limit_in_bytes": "\(2 * Self.gib)\n",
            "\(base)/jobs/memory.usage_in_bytes": "\(3 * Self.gib / 2)\n",
            "\(base)/jobs/memory.stat": "cache 1\ninactive_file 3\ntotal_inactive_file \(Self.gib / 2)\n",
            "\(base)/jobs/job7/memory.limit_in_bytes": "9223372036854771712\n",
            "\(base)/jobs/job7/memory.usage_in_bytes": "\(Self.gib)\n",
        ])
        let a = MemoryAvailability.read(root: root)
        XCTAssertEqual(a.memAvailable, 8 * Self.gib)
        XCTAssertEqual(a.cgroup, MemoryAvailability.CgroupLimit(version: 1, path: "/jobs", limit: 2 * Self.gib, used: Self.gib))
        XCTAssertEqual(a.bytes, Self.gib, "the cgroup's headroom is smaller than MemAvailable")
        XCTAssertTrue(a.explanation.contains("cgroup v1 memory limit 2.00 GiB on /jobs, 1.00 GiB in use"), a.explanation)
    }

    /// The tighter of two limits along the path wins; MemAvailable wins when it is smaller.
    func testV1TightestLimitAndMemAvailable() throws {
        let base = "sys/fs/cgroup/memory"
        let files = [
            "proc/self/cgroup": Self.v1Cgroup,
            "\(base)/jobs/memory.limit_in_bytes": "\(4 * Self.gib)\n",
            "\(base)/jobs/memory.usage_in_bytes": "\(Self.gib)\n",
            "\(base)/jobs/job7/memory.limit_in_bytes": "\(1792 * Self.mib)\n",
            "\(base)/jobs/job7/memory.usage_in_bytes": "\(100 * Self.mib)\n",
        ]
        var withMeminfo = files
        withMeminfo["proc/meminfo"] = Self.meminfo(availableKB: 512 * 1024)
        let a = MemoryAvailability.read(root: try makeRoot(withMeminfo))
        XCTAssertEqual(a.cgroup?.path, "/jobs/job7")
        XCTAssertEqual(a.cgroup?.headroom, 1692 * Self.mib, "no memory.stat: all usage counts")
        XCTAssertEqual(a.bytes, 512 * Self.mib)

        // No /proc/meminfo at all: the cgroup alone decides.
        let b = MemoryAvailability.read(root: try makeRoot(files))
        XCTAssertNil(b.memAvailable)
        XCTAssertEqual(b.bytes, 1692 * Self.mib)
    }

    /// A cgroup path that does not exist under the mount (another namespace) sets no limit,
    /// but the mount's own folder still counts.
    func testV1PathOutsideTheMount() throws {
        let base = "sys/fs/cgroup/memory"
        let root = try makeRoot([
            "proc/self/cgroup": Self.v1Cgroup,
            "\(base)/memory.limit_in_bytes": "\(Self.gib)\n",
            "\(base)/memory.usage_in_bytes": "\(Self.gib + 5)\n",
        ])
        let a = MemoryAvailability.read(root: root)
        XCTAssertEqual(a.cgroup?.path, "/")
        XCTAssertEqual(a.cgroup?.headroom, 0, "usage above the limit is no headroom, not a negative one")
        XCTAssertEqual(a.bytes, 0)
    }

    func testV2Layout() throws {
        let base = "sys/fs/cgroup"
        let root = try makeRoot([
            "proc/meminfo": Self.meminfo(availableKB: 16 * 1024 * 1024),
            "proc/self/cgroup": "0::/box/inner\n",
            "\(base)/cgroup.controllers": "cpuset cpu io memory pids\n",
            "\(base)/box/memory.max": "\(Self.gib)\n",
            "\(base)/box/memory.current": "\(300 * Self.mib)\n",
            "\(base)/box/memory.stat": "anon 1000\nfile 2000\ninactive_file \(100 * Self.mib)\nactive_file 3\n",
            "\(base)/box/inner/memory.max": "max\n",
            "\(base)/box/inner/memory.current": "\(200 * Self.mib)\n",
        ])
        let a = MemoryAvailability.read(root: root)
        XCTAssertEqual(a.cgroup, MemoryAvailability.CgroupLimit(version: 2, path: "/box", limit: Self.gib, used: 200 * Self.mib))
        XCTAssertEqual(a.bytes, 824 * Self.mib)
    }

    /// Unlimited everywhere, nothing readable, and nonsense content: no limit, no crash.
    func testUnlimitedMissingAndOddFiles() throws {
        let unlimited = MemoryAvailability.read(root: try makeRoot([
            "proc/meminfo": Self.meminfo(availableKB: 1024),
            "proc/self/cgroup": Self.v1Cgroup,
            "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
            "sys/fs/cgroup/memory/jobs/job7/memory.limit_in_bytes": "9223372036854771712\n",
        ]))
        XCTAssertNil(unlimited.cgroup)
        XCTAssertEqual(unlimited.bytes, Self.mib)

        let empty = MemoryAvailability.read(root: try makeRoot([:]))
        XCTAssertEqual(empty, MemoryAvailability(memAvailable: nil, cgroup: nil))
        XCTAssertNil(empty.bytes)
        XCTAssertEqual(empty.explanation, "nothing known")

        let odd = MemoryAvailability.read(root: try makeRoot([
            "proc/meminfo": "\u{0}\u{ff}MemAvailable:\n\n:::",
            "proc/self/cgroup": "0::/x\n4:memory:/x\n",
            "sys/fs/cgroup/memory/x/memory.limit_in_bytes": "lots\n",
            "sys/fs/cgroup/memory/memory.limit_in_bytes": "",
            "sys/fs/cgroup/cgroup.controllers": "memory\n",
            "sys/fs/cgroup/x/memory.max": "-5\n",
        ]))
        XCTAssertEqual(odd, MemoryAvailability(memAvailable: nil, cgroup: nil))

        // A v2 line but no unified hierarchy mounted (v1-only machine without a memory line).
        let noMount = MemoryAvailability.read(root: try makeRoot(["proc/self/cgroup": "0::/x\n",
                                                                  "sys/fs/cgroup/x/memory.max": "\(Self.gib)\n"]))
        XCTAssertNil(noMount.cgroup, "without cgroup.controllers this is not a v2 mount")
    }

    /// This machine, whatever it is: reading must not fail, and a value read is plausible.
    func testThisMachine() {
        let a = MemoryAvailability.read()
        if let m = a.memAvailable { XCTAssertGreaterThan(m, 0) }
        if let c = a.cgroup { XCTAssertGreaterThan(c.limit, 0) }
    }
}
