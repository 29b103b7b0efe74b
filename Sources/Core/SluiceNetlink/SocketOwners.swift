import SluiceNet
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// Which local socket a flow through the TUN belongs to, from the kernel's own socket
/// tables (NETLINK_SOCK_DIAG, `inet_diag`): the owner's uid and the socket's inode, for
/// `UID` rules. Needs no privilege: an exact lookup of one 4-tuple is what `ss` does.
///
/// A flow from another machine (gateway mode) has no local socket: the lookup says so
/// (ENOENT) and the flow has no owner.
package final class SocketOwners: Sendable {
    /// The socket that owns a flow.
    package struct Owner: Sendable, Equatable {
        package var uid: UInt32
        package var inode: UInt32
    }

    static let sockDiagByFamily: UInt16 = 20
    static let protocolSockDiag: CInt = 4
    private let socket: Locked<NetlinkSocket>

    package init() throws(SystemError) {
        socket = Locked(try NetlinkSocket(netlinkProtocol: Self.protocolSockDiag))
    }

    /// The owner of the local socket `local` → `remote` (TCP or UDP); nil when there is none.
    package func owner(tcp: Bool, local: InetEndpoint, remote: InetEndpoint) -> Owner? {
        guard local.address.isIPv4 == remote.address.isIPv4 else { return nil }
        var request = NetlinkRequest(
            type: Self.sockDiagByFamily, flags: NetlinkConstant.flagRequest | NetlinkConstant.flagAck)
        // struct inet_diag_req_v2: family, protocol, ext, pad, states; then inet_diag_sockid.
        request.append(UInt8(local.address.isIPv4 ? AF_INET : AF_INET6))
        request.append(UInt8(tcp ? IPPROTO_TCP : IPPROTO_UDP))
        request.append(UInt8(0))
        request.append(UInt8(0))
        request.append(UInt32.max)  // every state
        // TCP looks the socket up as (src = local, dst = remote); UDP as the receiver of a
        // datagram from src to dst, so there the remote end comes first.
        let (first, second) = tcp ? (local, remote) : (remote, local)
        request.append(first.port.bigEndian)
        request.append(second.port.bigEndian)
        request.append(bytes: Self.address16(first.address))
        request.append(bytes: Self.address16(second.address))
        request.append(UInt32(0))  // idiag_if: any
        request.append(UInt32.max)  // idiag_cookie: INET_DIAG_NOCOOKIE
        request.append(UInt32.max)
        let reply: NetlinkSocket.Reply
        do {
            reply = try socket.withLock { socket throws(SystemError) in
                try socket.exchange(request, operation: "inet_diag lookup of \(local) -> \(remote)")
            }
        } catch {
            return nil  // ENOENT: no such local socket
        }
        // struct inet_diag_msg: 4 bytes, the 48-byte sockid, expires, rqueue, wqueue, uid, inode.
        guard let message = reply.messages.first else { return nil }
        let bytes = NetlinkBytes(message.payload)
        guard let uid = bytes.u32(at: 64), let inode = bytes.u32(at: 68) else { return nil }
        return Owner(uid: uid, inode: inode)
    }

    /// An address in `inet_diag`'s four 32-bit words, network order (IPv4 in the first).
    static func address16(_ address: IPAddress) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 16)
        switch address {
        case .v4(let a):
            for i in 0..<4 { out[i] = UInt8((a.rawValue >> UInt32(24 - 8 * i)) & 0xFF) }
        case .v6(let a):
            for i in 0..<8 { out[i] = UInt8((a.high >> UInt64(56 - 8 * i)) & 0xFF) }
            for i in 0..<8 { out[8 + i] = UInt8((a.low >> UInt64(56 - 8 * i)) & 0xFF) }
        }
        return out
    }
}
