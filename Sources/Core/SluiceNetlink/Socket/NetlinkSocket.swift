import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// `struct sockaddr_nl`: family, padding, port id, multicast group bitmask (12 bytes; pinned by a test).
struct NetlinkSocketAddress {
    var family = UInt16(AF_NETLINK)
    var padding: UInt16 = 0
    /// 0 is the kernel as a destination; in bind() it asks the kernel to pick a unique port id for us.
    var portID: UInt32 = 0
    var groups: UInt32 = 0
}

/// One `AF_NETLINK` socket (`NETLINK_ROUTE` unless another protocol is asked for) and the request/reply protocol
/// spoken on it.
///
/// A request goes out with a fresh sequence number; replies are collected until the `NLMSG_ERROR` that ends a
/// plain request (error 0 is the ACK) or the `NLMSG_DONE` that ends a dump. Messages with another sequence
/// number are late replies to an earlier request that timed out, and are skipped. Not thread-safe.
final class NetlinkSocket {
    /// The receive buffer starts at 32 KiB, the size the kernel sizes dump batches for, and grows on demand.
    static let initialBufferSize = 32 * 1024
    /// No rtnetlink message we ask for comes near this; a larger one is dropped with EMSGSIZE.
    static let maximumBufferSize = 1 << 20
    /// How long a request waits for its reply before failing with ETIMEDOUT.
    static let replyTimeoutSeconds = 5

    let descriptor: OwnedDescriptor
    private var buffer: [UInt8]
    private var lastSequence: UInt32 = 0

    /// Opens and binds the socket, joining the multicast `groups` (`RTNLGRP_*` numbers).
    /// `netlinkProtocol`: NETLINK_ROUTE (rtnetlink) unless another family is asked for
    /// (NETLINK_SOCK_DIAG for ``SocketOwners``).
    init(groups: [UInt32] = [], nonBlocking: Bool = false, netlinkProtocol: CInt = NetlinkConstant.protocolRoute)
        throws(SystemError)
    {
        var type = CInt(SOCK_RAW.rawValue) | CInt(SOCK_CLOEXEC.rawValue)
        if nonBlocking { type |= CInt(SOCK_NONBLOCK.rawValue) }
        let fd = try Posix.call("socket AF_NETLINK \(netlinkProtocol)") {
            socket(AF_NETLINK, type, netlinkProtocol)
        }
        descriptor = OwnedDescriptor(takingOwnershipOfDescriptor: fd)
        buffer = [UInt8](repeating: 0, count: Self.initialBufferSize)

        var address = NetlinkSocketAddress()
        try Posix.call("bind AF_NETLINK") {
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<NetlinkSocketAddress>.size))
                }
            }
        }
        // Best effort: extended acks put the kernel's explanation into errors ("Nexthop device is not up"), and
        // capped acks keep error replies from echoing our whole request. Kernels without them still work.
        _ = setOption(NetlinkConstant.solNetlink, NetlinkConstant.extAck, 1)
        _ = setOption(NetlinkConstant.solNetlink, NetlinkConstant.capAck, 1)
        for group in groups {
            // NETLINK_ADD_MEMBERSHIP takes a group number, unlike the legacy nl_groups bitmask of bind().
            let result = setOption(NetlinkConstant.solNetlink, NetlinkConstant.addMembership, CInt(group))
            if result < 0 { throw SystemError("setsockopt NETLINK_ADD_MEMBERSHIP group \(group)", errno: Glibc.errno) }
        }
        if !nonBlocking {
            // A reply that never comes (it cannot, short of a kernel bug, but a bounded wait is cheap) must not
            // hang the worker forever.
            var timeout = timeval(tv_sec: Self.replyTimeoutSeconds, tv_usec: 0)
            try Posix.call("setsockopt SO_RCVTIMEO") {
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            }
        }
    }

    /// setsockopt with an int value; returns its result (errno is left set on failure).
    @discardableResult
    func setOption(_ level: CInt, _ name: CInt, _ value: CInt) -> CInt {
        var value = value
        return setsockopt(descriptor.rawValue, level, name, &value, socklen_t(MemoryLayout<CInt>.size))
    }

    /// Sends one finished request to the kernel.
    func send(_ bytes: [UInt8], operation: String) throws(SystemError) {
        let fd = descriptor.rawValue
        var kernel = NetlinkSocketAddress()
        try Posix.call("\(operation): sendto") {
            bytes.withUnsafeBytes { raw in
                withUnsafePointer(to: &kernel) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(
                            fd, raw.baseAddress, raw.count, 0, $0, socklen_t(MemoryLayout<NetlinkSocketAddress>.size))
                    }
                }
            }
        }
    }

    /// The next datagram from the kernel; nil when `dontWait` and nothing is queued.
    ///
    /// Each datagram is peeked at first with `MSG_PEEK | MSG_TRUNC`, which returns its full length, so one larger
    /// than the buffer grows the buffer instead of being silently cut (netlink drops the rest of a truncated
    /// datagram). Datagrams not sent by the kernel (port id 0) are dropped.
    func receive(dontWait: Bool, operation: String) throws(SystemError) -> [UInt8]? {
        let fd = descriptor.rawValue
        let waitFlag = dontWait ? CInt(MSG_DONTWAIT) : 0
        while true {
            let peeked = buffer.withUnsafeMutableBytes {
                recv(fd, $0.baseAddress, $0.count, CInt(MSG_PEEK | MSG_TRUNC) | waitFlag)
            }
            if peeked < 0 {
                let error = Glibc.errno
                if error == EINTR { continue }
                if error == EAGAIN || error == EWOULDBLOCK {
                    if dontWait { return nil }
                    throw SystemError(
                        "\(operation): no reply from the kernel within \(Self.replyTimeoutSeconds) s", errno: ETIMEDOUT)
                }
                throw SystemError("\(operation): recv", errno: error)
            }
            if peeked > buffer.count {
                if peeked <= Self.maximumBufferSize {
                    buffer = [UInt8](repeating: 0, count: NetlinkConstant.align(peeked))
                } else {
                    // Consume it so the next call sees the following datagram, then report.
                    _ = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, waitFlag) }
                    throw SystemError(
                        "\(operation): \(peeked)-byte netlink message exceeds the receive limit", errno: EMSGSIZE)
                }
            }
            var source = NetlinkSocketAddress()
            var sourceLength = socklen_t(MemoryLayout<NetlinkSocketAddress>.size)
            let received = buffer.withUnsafeMutableBytes { raw in
                withUnsafeMutablePointer(to: &source) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        recvfrom(fd, raw.baseAddress, raw.count, CInt(MSG_TRUNC) | waitFlag, $0, &sourceLength)
                    }
                }
            }
            if received < 0 {
                let error = Glibc.errno
                if error == EINTR { continue }
                if error == EAGAIN || error == EWOULDBLOCK, dontWait { return nil }
                throw SystemError("\(operation): recv", errno: error)
            }
            if received > buffer.count {
                throw SystemError("\(operation): netlink message truncated (\(received) bytes)", errno: EMSGSIZE)
            }
            guard source.portID == 0 else { continue }
            return Array(buffer[0..<received])
        }
    }

    /// What one request returned.
    struct Reply {
        var messages: [NetlinkMessage] = []
        /// A dump message carried `NLM_F_DUMP_INTR`: the table changed while it was read.
        var interrupted = false
    }

    /// Sends `request` and collects its replies until the ACK, error or end of dump.
    /// - Throws: the kernel's error as ``SystemError`` named by `operation`, with its extended-ack text.
    func exchange(_ request: NetlinkRequest, operation: String) throws(SystemError) -> Reply {
        lastSequence = lastSequence == UInt32.max ? 1 : lastSequence + 1
        let sequence = lastSequence
        try send(request.finish(sequence: sequence), operation: operation)
        var reply = Reply()
        while true {
            guard let datagram = try receive(dontWait: false, operation: operation) else { continue }
            let batch = NetlinkMessage.split(datagram: datagram)
            for message in batch.messages where message.sequence == sequence {
                switch message.type {
                case NetlinkConstant.messageError:
                    guard let error = message.errorReply else {
                        throw SystemError("\(operation): malformed NLMSG_ERROR from the kernel", errno: EBADMSG)
                    }
                    if error.errno == 0 { return reply }
                    let detail = error.kernelMessage.map { " (kernel: \($0))" } ?? ""
                    throw SystemError(operation + detail, errno: error.errno)
                case NetlinkConstant.messageDone:
                    // NLMSG_DONE carries an int; a dump that failed part-way reports its -errno there.
                    if let code = NetlinkBytes(message.payload).i32(at: 0), code < 0, code > Int32.min {
                        throw SystemError(operation, errno: -code)
                    }
                    return reply
                case NetlinkConstant.messageNoop:
                    continue
                case NetlinkConstant.messageOverrun:
                    throw SystemError("\(operation): netlink overrun", errno: ENOBUFS)
                default:
                    if message.flags & NetlinkConstant.flagDumpInterrupted != 0 { reply.interrupted = true }
                    reply.messages.append(message)
                }
            }
            if batch.isMalformed {
                throw SystemError("\(operation): malformed netlink reply from the kernel", errno: EBADMSG)
            }
        }
    }

    /// Runs a dump (`NLM_F_DUMP`) and returns its messages, repeating it when the kernel flags it as interrupted
    /// by a concurrent change (`NLM_F_DUMP_INTR`), since such a listing may miss or repeat entries.
    func dump(_ request: NetlinkRequest, operation: String) throws(SystemError) -> [NetlinkMessage] {
        let attempts = 5
        for _ in 1..<attempts {
            let reply = try exchange(request, operation: operation)
            if !reply.interrupted { return reply.messages }
        }
        let reply = try exchange(request, operation: operation)
        if reply.interrupted {
            throw SystemError("\(operation): dump kept changing under us (\(attempts) attempts)", errno: EAGAIN)
        }
        return reply.messages
    }
}
