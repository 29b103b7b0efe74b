import SluiceNet
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// Resolves host names for the data plane (a fake address's name for DIRECT, a proxy
/// server's name): through the dns worker (hosts, cache, upstreams; never the fake pool)
/// while it is connected, else with the system resolver on a short-lived thread.
package final class NameResolver: Sendable {
    package typealias Completion = @Sendable (_ addresses: [IPAddress], _ error: String) -> Void

    private let dns: (any NameService)?

    package init(dns: (any NameService)?) { self.dns = dns }

    /// `completion` runs once, on some other thread (or at once for a literal address).
    /// - Parameter ipv6: ask for IPv6 addresses first.
    package func resolve(_ name: String, ipv6: Bool, completion: @escaping Completion) {
        if let address = IPAddress(name) {
            completion([address], "")
            return
        }
        if let dns, dns.isConnected {
            dns.resolve(name, ipv6: ipv6, completion: completion)
            return
        }
        do {
            try OSThread.detached(name: "tun-resolve") {
                let (addresses, error) = Self.systemResolve(name)
                let ordered = addresses.filter { $0.isIPv4 != ipv6 } + addresses.filter { $0.isIPv4 == ipv6 }
                completion(ordered, error)
            }
        } catch {
            completion([], "cannot start a resolver thread: \(error)")
        }
    }

    /// Resolves and waits, at most `timeoutMilliseconds` (a thread that may block).
    package func resolveBlocking(_ name: String, ipv6: Bool, timeoutMilliseconds: Int32) -> ([IPAddress], String) {
        let result = Locked<([IPAddress], String)?>(nil)
        guard let event = try? Descriptors.pipe() else { return ([], "cannot make a pipe") }
        let writeEnd = event.write
        resolve(name, ipv6: ipv6) { addresses, error in
            result.withLock { $0 = (addresses, error) }
            var one: UInt8 = 1
            _ = write(writeEnd.rawValue, &one, 1)
        }
        _ = try? Descriptors.waitReadable(event.read.rawValue, timeoutMilliseconds: timeoutMilliseconds)
        return result.withLock { $0 } ?? ([], "no answer within \(timeoutMilliseconds) ms")
    }

    /// getaddrinfo(3): the system resolver.
    package static func systemResolve(_ name: String) -> ([IPAddress], String) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = CInt(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(name, nil, &hints, &list)
        guard rc == 0 else { return ([], String(cString: gai_strerror(rc))) }
        defer { freeaddrinfo(list) }
        var addresses: [IPAddress] = []
        var entry = list
        while let info = entry?.pointee {
            defer { entry = info.ai_next }
            guard let sockaddr = info.ai_addr else { continue }
            var bytes: (UInt64, UInt64) = (0, 0)
            let address: IPAddress? = withUnsafeMutableBytes(of: &bytes) { raw in
                if info.ai_family == AF_INET {
                    var a = sockaddr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                    withUnsafeBytes(of: &a) { raw.copyMemory(from: $0) }
                } else if info.ai_family == AF_INET6 {
                    var a = sockaddr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                    withUnsafeBytes(of: &a) { raw.copyMemory(from: $0) }
                } else {
                    return nil
                }
                return IPAddress(family: info.ai_family, networkBytes: UnsafeRawBufferPointer(raw))
            }
            if let address, !addresses.contains(address) { addresses.append(address) }
        }
        return (addresses, addresses.isEmpty ? "no address" : "")
    }
}

/// The resolver sluice runs itself (the dns worker, reached by the tun worker's `DNSPeer`): hosts, cache and
/// upstreams, never the fake pool. ``NameResolver`` asks it first and falls back to the system resolver.
package protocol NameService: AnyObject, Sendable {
    /// Whether it can answer now.
    var isConnected: Bool { get }
    /// `completion` runs once, on some other thread.
    func resolve(_ name: String, ipv6: Bool, completion: @escaping @Sendable ([IPAddress], String) -> Void)
}
