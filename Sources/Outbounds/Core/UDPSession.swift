import SluiceConfig
import SluiceNet
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// Where a datagram goes, or where a reply came from: an address, or (through a proxy)
/// a name the proxy resolves.
package enum DatagramAddress: Hashable, Sendable, CustomStringConvertible {
    case endpoint(InetEndpoint)
    case name(String, UInt16)

    package var description: String {
        switch self {
        case .endpoint(let e): e.description
        case .name(let n, let p): "\(n):\(p)"
        }
    }

    package var socketEndpoint: SocketEndpoint {
        switch self {
        case .endpoint(let e): SocketEndpoint(address: e.address, port: e.port)
        case .name(let n, let p): SocketEndpoint(host: .name(n), port: p)
        }
    }

    package init(_ endpoint: SocketEndpoint) {
        switch endpoint.host {
        case .address(let a): self = .endpoint(InetEndpoint(a, endpoint.port))
        case .name(let n): self = .name(n, endpoint.port)
        }
    }
}

/// What one receive on a session gave.
package enum UDPReceive {
    /// A reply: its payload's range in the buffer, and the remote it came from.
    case datagram(Range<Int>, from: DatagramAddress)
    /// Something that is not a reply for the client (an ICMP error surfacing, a packet
    /// that fails to decrypt, a stray sender); keep reading.
    case skipped
    /// Nothing is waiting.
    case empty
}

/// One client endpoint's UDP through an outbound: a plain socket (DIRECT), or a proxy's
/// association (SOCKS5 UDP ASSOCIATE, Shadowsocks UDP) that wraps each datagram.
///
/// This is the contract's datagram-session shape: whatever carries the datagrams (a socket of its own today, a
/// multiplexed or QUIC session later), the flow table polls ``descriptor`` and moves datagrams with
/// ``send(_:to:)`` and ``receive(into:)``; a new protocol implements this protocol and leaves the flow table alone.
///
/// ``send(_:to:)`` may be called from any thread; ``receive(into:)`` only from the flow
/// table's thread. A session that needs a handshake first queues a few datagrams.
package protocol UDPSession: AnyObject, Sendable {
    /// Polled for replies; -1 until ``start(ready:)`` reported success.
    var descriptor: CInt { get }
    /// Polled too: readable means the association ended (SOCKS5's TCP control
    /// connection closed); -1 when there is none.
    var controlDescriptor: CInt { get }
    /// Prepares the session; `ready` runs once, at once or from another thread, with
    /// false when it cannot work (and a reason for the log).
    func start(ready: @escaping @Sendable (_ ok: Bool, _ problem: String) -> Void)
    /// Sends one datagram; false when it was dropped.
    func send(_ payload: UnsafeRawBufferPointer, to destination: DatagramAddress) -> Bool
    /// Reads one reply into `buffer`.
    func receive(into buffer: UnsafeMutableRawBufferPointer) -> UDPReceive
    /// Closes its descriptors (idempotent).
    func close()
}

/// Datagrams that arrive while a session is still being set up (a SOCKS5 association
/// takes a few round trips; a client's first burst comes at once), sent in order once it
/// is ready. Bounded: beyond ``limit`` datagrams or ``byteLimit`` bytes they are dropped,
/// as on any lossy path.
package struct PendingDatagrams {
    package static let limit = 128
    package static let byteLimit = 256 * 1024
    private(set) var items: [([UInt8], DatagramAddress)] = []
    private var bytes = 0

    /// False when full.
    package mutating func append(_ payload: UnsafeRawBufferPointer, to destination: DatagramAddress) -> Bool {
        guard items.count < Self.limit, bytes + payload.count <= Self.byteLimit else { return false }
        items.append((Array(payload), destination))
        bytes += payload.count
        return true
    }

    package mutating func take() -> [([UInt8], DatagramAddress)] {
        defer {
            items = []
            bytes = 0
        }
        return items
    }
}
