import SluiceConfig
import SluiceNet
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// DIRECT UDP: one plain socket, datagrams sent to their real destination.
package final class DirectUDPSession: UDPSession {
    private let socket: OwnedDescriptor
    private let ipVersion: IPVersion

    package init(socket: OwnedDescriptor, ipVersion: IPVersion = .dual) {
        self.socket = socket
        self.ipVersion = ipVersion
    }

    package var descriptor: CInt { socket.rawValue }
    package var controlDescriptor: CInt { -1 }

    package func start(ready: @escaping @Sendable (Bool, String) -> Void) { ready(true, "") }

    package func send(_ payload: UnsafeRawBufferPointer, to destination: DatagramAddress) -> Bool {
        // Names never reach DIRECT: the dispatcher resolves fake destinations first.
        guard case .endpoint(let endpoint) = destination else { return false }
        if ipVersion != .dual {
            let family = endpoint.address.mapped(toIPv4: true)
            if (ipVersion == .ipv4 && !family.isIPv4) || (ipVersion == .ipv6 && family.isIPv4) { return false }
        }
        return (try? InetSocket.send(socket.rawValue, payload, to: endpoint)) ?? false
    }

    package func receive(into buffer: UnsafeMutableRawBufferPointer) -> UDPReceive {
        do {
            guard let (n, remote) = try InetSocket.receive(socket.rawValue, into: buffer) else { return .empty }
            return .datagram(0..<n, from: .endpoint(remote))
        } catch {
            // ICMP errors for earlier sends surface here (ECONNREFUSED...); the flow lives on.
            return .skipped
        }
    }

    package func close() { socket.close() }
}
