import CSluice
import IPC
import Logging
import SluiceNet
import SluicePacket
import SluiceRouting
import SluiceSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Forwards ICMP echo for real: a ping through sluice measures the path to the real host,
/// and fails when that host is down (mihomo answers pings itself, hiding both).
///
/// Echo requests read from the TUN are re-sent from this host on raw ICMP sockets with an
/// identifier of our own; the replies are mapped back to the client's identifier and
/// written into the TUN from the destination's address. Raw sockets need CAP_NET_RAW,
/// which the tun worker does not hold: sluiced opens them and hands them over at spawn
/// (`SLUICE_ICMP4_FD`, `SLUICE_ICMP6_FD`). The kernel checks capabilities when a socket
/// is created, not when it is used.
final class ICMPForwarder: @unchecked Sendable {
    private struct Origin: Hashable {
        var client: IPAddress
        var identifier: UInt16
        var destination: IPAddress
    }

    private struct Mapping {
        var origin: Origin
        var lastUsed: UInt64
    }

    private let v4: OwnedDescriptor?
    private let v6: OwnedDescriptor?
    private let tun: TunWriter
    private let logger: Logger
    private let table = Locked<(byOrigin: [Origin: UInt16], byID: [UInt16: Mapping], next: UInt16)>(([:], [:], 1))
    let requests = Atomic<UInt64>(0)
    let replies = Atomic<UInt64>(0)

    /// Takes the handed-over sockets (either may be absent) and marks them so their
    /// packets bypass the TUN.
    init(v4: OwnedDescriptor?, v6: OwnedDescriptor?, routingMark: UInt32, tun: TunWriter, logger: Logger) {
        self.v4 = v4
        self.v6 = v6
        self.tun = tun
        self.logger = logger
        for socket in [v4, v6].compactMap({ $0 }) {
            if routingMark != 0 { try? InetSocket.setMark(socket.rawValue, routingMark) }
            try? Descriptors.setNonBlocking(socket.rawValue)
        }
    }

    func canForward(ipv4: Bool) -> Bool { (ipv4 ? v4 : v6) != nil }

    /// Sends a client's echo request on (reader thread). Returns false when this family
    /// cannot be forwarded.
    func forward(
        client: IPAddress, destination: IPAddress, identifier: UInt16, sequence: UInt16, payload: UnsafeRawBufferPointer
    ) -> Bool {
        let ipv4 = destination.isIPv4
        guard let socket = ipv4 ? v4 : v6 else { return false }
        let origin = Origin(client: client, identifier: identifier, destination: destination)
        let now = MonotonicClock.now
        let ours: UInt16 = table.withLock { t in
            if let id = t.byOrigin[origin] {
                t.byID[id]?.lastUsed = now
                return id
            }
            var id = t.next
            while t.byID[id] != nil { id = id &+ 1 == 0 ? 1 : id &+ 1 }
            t.next = id &+ 1 == 0 ? 1 : id &+ 1
            t.byOrigin[origin] = id
            t.byID[id] = Mapping(origin: origin, lastUsed: now)
            return id
        }
        var message = [UInt8](repeating: 0, count: payload.count + 8)
        let length = message.withUnsafeMutableBytes {
            PacketBuilder.icmpEchoMessage(
                into: $0, request: true, identifier: ours, sequence: sequence, payload: payload,
                family: ipv4 ? .v4 : .v6)
        }
        guard length > 0 else { return false }
        _ = message.withUnsafeBytes {
            try? InetSocket.send(
                socket.rawValue, UnsafeRawBufferPointer(rebasing: $0[0..<length]), to: InetEndpoint(destination, 0))
        }
        requests.add(1, ordering: .relaxed)
        return true
    }

    /// The raw sockets the TUN reader polls beside the TUN: replies are handled on the thread that handled the
    /// request, so a ping costs no hand-over to another thread (``drain(_:)``).
    var descriptors: [CInt] { [v4, v6].compactMap { $0?.rawValue } }

    /// Reply buffers, used by the reader thread only.
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 8)
    private let packet = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536 + 64, alignment: 8)

    deinit {
        buffer.deallocate()
        packet.deallocate()
    }

    /// Forgets identifiers unused for a minute (the reader's once-a-second sweep).
    func sweep(now: UInt64) {
        table.withLock { t in
            for (id, m) in t.byID where now - min(now, m.lastUsed) > 60_000_000_000 {
                t.byID[id] = nil
                t.byOrigin[m.origin] = nil
            }
        }
    }

    /// Reads every reply waiting on `fd` (one of ``descriptors``) and writes them into the TUN. Reader thread.
    func drain(_ fd: CInt) {
        let ipv4 = fd == v4?.rawValue
        while true {
            guard let got = try? InetSocket.receive(fd, into: buffer) else { return }
            let (n, from) = got
            // Raw IPv4 sockets deliver the IP header too; raw ICMPv6 sockets do not.
            var offset = 0
            if ipv4 {
                guard n >= 20 else { continue }
                offset = Int(buffer[0] & 0x0F) * 4
            }
            guard n >= offset + 8 else { continue }
            let type = buffer[offset]
            guard type == (ipv4 ? 0 : 129) else { continue }  // echo reply
            let id = UInt16(buffer[offset + 4]) << 8 | UInt16(buffer[offset + 5])
            let sequence = UInt16(buffer[offset + 6]) << 8 | UInt16(buffer[offset + 7])
            guard let mapping = table.withLock({ $0.byID[id] }), mapping.origin.destination == from.address else {
                continue
            }
            let length = PacketBuilder.icmpEchoReply(
                into: packet, source: mapping.origin.destination, destination: mapping.origin.client,
                identifier: mapping.origin.identifier, sequence: sequence,
                payload: UnsafeRawBufferPointer(rebasing: buffer[(offset + 8)..<n]))
            if length > 0, tun.write(packet.baseAddress, length) > 0 { replies.add(1, ordering: .relaxed) }
        }
    }

}
