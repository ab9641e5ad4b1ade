import Foundation

/// Whether a listening address lets other machines in, and the start-up warning when it does
/// and no API key is set.
public enum NetworkExposure {
    /// True for an address only this machine can reach: 127.0.0.0/8, ::1 (also IPv4-mapped),
    /// `localhost` and `*.localhost`. False for the wildcards (0.0.0.0, ::), other addresses and
    /// other names (which may resolve to anything).
    public static func isLoopback(host: String) -> Bool {
        var name = host.lowercased()
        if name.hasPrefix("["), name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
        if name.hasSuffix(".") { name.removeLast() }
        if name == "localhost" || name.hasSuffix(".localhost") { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, name, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, name, &v6) == 1 else { return false }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes == [UInt8](repeating: 0, count: 15) + [1] { return true }  // ::1
        // ::ffff:127.x.y.z
        return bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xff && bytes[11] == 0xff && bytes[12] == 127
    }

    /// One line for stderr when `address` is reachable from the network and no key is set;
    /// nil for a Unix socket, a loopback host, or when a key is set.
    public static func warning(for address: GemmaServerConfiguration.Address, apiKey: String?) -> String? {
        guard apiKey == nil, case .tcp(let host, _) = address, !isLoopback(host: host) else { return nil }
        return "warning: --host \(host) is reachable from other machines and no API key is set: anyone on the network "
            + "can use this server; set GEMMA_TINY_API_KEY=KEY (or --api-key KEY), or use --host 127.0.0.1"
    }
}
