import SluiceNet
import SluiceSystem
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `InetSocket.serverPair` on `[::]`: the DNS server's `dns.listen: ":PORT"`, every address of both families.
@Suite("inet socket server pair")
struct InetSocketServerPairTests {
    @Test("[::] is dual-stack: IPV6_V6ONLY is cleared, so IPv4 clients reach it too")
    func wildcardIsDualStack() throws {
        let (udp, tcp) = try InetSocket.serverPair(InetEndpoint(.v6(.any), 0))
        defer {
            udp.close()
            tcp.close()
        }
        for fd in [udp.rawValue, tcp.rawValue] {
            var family = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let named = withUnsafeMutablePointer(to: &family) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            #expect(named == 0)
            if family.ss_family == sa_family_t(AF_INET) { continue }  // a host without IPv6 gets 0.0.0.0
            var v6only: CInt = 1
            var size = socklen_t(MemoryLayout<CInt>.size)
            #expect(getsockopt(fd, CInt(IPPROTO_IPV6), IPV6_V6ONLY, &v6only, &size) == 0)
            #expect(v6only == 0)
        }
    }
}
