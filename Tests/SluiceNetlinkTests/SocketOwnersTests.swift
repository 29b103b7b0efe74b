import SluiceNet
import SluiceNetlink
import SluiceSystem
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Socket owners (inet_diag)")
struct SocketOwnersTests {
    @Test("a local TCP and UDP socket is found with its owner's uid; a flow with no local socket has none")
    func owners() throws {
        let owners = try SocketOwners()
        let loopback = IPAddress("127.0.0.1")!
        let listener = try InetSocket.tcp(AF_INET)
        try InetSocket.bind(listener.rawValue, InetEndpoint(loopback, 0))
        #expect(listen(listener.rawValue, 4) == 0)
        let server = try InetSocket.address(listener.rawValue)
        let client = try InetSocket.tcp(AF_INET)
        _ = try InetSocket.connect(client.rawValue, server)
        #expect(try Descriptors.waitWritable(client.rawValue, timeoutMilliseconds: 2000))
        let local = try InetSocket.address(client.rawValue)
        let owner = try #require(owners.owner(tcp: true, local: local, remote: server))
        #expect(owner.uid == getuid())
        #expect(owner.inode != 0)

        let udp = try InetSocket.udp(AF_INET)
        _ = try InetSocket.connect(udp.rawValue, InetEndpoint(loopback, 9))
        let udpLocal = try InetSocket.address(udp.rawValue)
        #expect(owners.owner(tcp: false, local: udpLocal, remote: InetEndpoint(loopback, 9))?.uid == getuid())

        #expect(owners.owner(tcp: true, local: InetEndpoint(IPAddress("10.255.0.1")!, 1), remote: server) == nil)
    }
}
