import CSluice

#if canImport(Glibc)
import Glibc
#endif

/// The kind of AF_UNIX socket to create.
package enum UnixSocketKind: Sendable {
    case stream, seqpacket, datagram

    var shimValue: CInt {
        switch self {
        case .stream: 0
        case .seqpacket: 1
        case .datagram: 2
        }
    }
}

/// What one `recvmsg` returned: bytes, and the descriptors that rode along.
package struct ReceivedChunk: Sendable {
    /// Bytes read; empty means orderly end of stream.
    package var bytes: [UInt8]
    /// Descriptors received (close-on-exec), now owned by the receiver.
    package var descriptors: [OwnedDescriptor]
    /// The kernel dropped ancillary data or bytes (MSG_CTRUNC / MSG_TRUNC).
    package var truncated: Bool
}

/// Credentials of the process at the other end of a Unix socket (SO_PEERCRED).
package struct PeerCredentials: Sendable, Equatable, CustomStringConvertible {
    package var pid: pid_t
    package var uid: uid_t
    package var gid: gid_t

    package init(pid: pid_t, uid: uid_t, gid: gid_t) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    package var description: String { "pid \(pid) uid \(uid) gid \(gid)" }
}

/// AF_UNIX socket operations, including descriptor passing (SCM_RIGHTS).
package enum UnixSocket {
    /// The most descriptors one message may carry.
    package static let maxDescriptorsPerMessage = Int(CSLUICE_MAX_FDS)

    /// A connected pair of sockets (close-on-exec).
    package static func pair(_ kind: UnixSocketKind = .stream) throws(SystemError) -> (OwnedDescriptor, OwnedDescriptor)
    {
        var fds: [CInt] = [-1, -1]
        try Posix.check("socketpair", csluice_socketpair(kind.shimValue, &fds))
        return (
            OwnedDescriptor(takingOwnershipOfDescriptor: fds[0]), OwnedDescriptor(takingOwnershipOfDescriptor: fds[1])
        )
    }

    /// Sends bytes with descriptors attached to the first byte. The descriptors stay owned
    /// by the caller (the kernel duplicates them into the message).
    /// - Returns: the number of bytes written, which may be short on a stream socket;
    ///   the descriptors went with the first byte if any byte was written.
    package static func send(
        _ socket: CInt, _ bytes: UnsafeRawBufferPointer, descriptors: [CInt] = [], nonBlocking: Bool = false
    ) throws(SystemError) -> Int {
        guard descriptors.count <= maxDescriptorsPerMessage else {
            throw SystemError("sendmsg with \(descriptors.count) descriptors", errno: EINVAL)
        }
        let sent = descriptors.withUnsafeBufferPointer { fds in
            csluice_send_with_fds(
                socket, bytes.baseAddress, bytes.count, fds.baseAddress, CInt(fds.count), nonBlocking ? 1 : 0)
        }
        return Int(try Posix.check("sendmsg", sent))
    }

    /// Receives up to `maxBytes` and any descriptors that come with them.
    /// Throws `EAGAIN` on a non-blocking socket with nothing to read.
    package static func receive(_ socket: CInt, maxBytes: Int = 65536, nonBlocking: Bool = false) throws(SystemError)
        -> ReceivedChunk
    {
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        var fds = [CInt](repeating: -1, count: maxDescriptorsPerMessage)
        var count: CInt = 0
        var truncated: CInt = 0
        let n = buffer.withUnsafeMutableBytes { raw in
            csluice_recv_with_fds(socket, raw.baseAddress, raw.count, &fds, &count, &truncated, nonBlocking ? 1 : 0)
        }
        try Posix.check("recvmsg", n)
        buffer.removeSubrange(Int(n)...)
        let owned = fds.prefix(Int(count)).map { OwnedDescriptor(takingOwnershipOfDescriptor: $0) }
        return ReceivedChunk(bytes: buffer, descriptors: owned, truncated: truncated != 0)
    }

    /// SO_PEERCRED of a connected socket.
    package static func peerCredentials(_ socket: CInt) throws(SystemError) -> PeerCredentials {
        var pid: pid_t = 0
        var uid: uid_t = 0
        var gid: gid_t = 0
        try Posix.check("getsockopt SO_PEERCRED", csluice_peer_credentials(socket, &pid, &uid, &gid))
        return PeerCredentials(pid: pid, uid: uid, gid: gid)
    }

    /// A listening stream socket at `path` with file mode `mode` (a stale socket file is replaced).
    package static func listen(path: String, mode: mode_t = 0o660, backlog: CInt = 64, nonBlocking: Bool = false)
        throws(SystemError) -> OwnedDescriptor
    {
        let fd = try Posix.check("listen on \(path)", csluice_listen_unix(path, UInt32(mode), backlog))
        let socket = OwnedDescriptor(takingOwnershipOfDescriptor: fd)
        if nonBlocking { try Descriptors.setNonBlocking(fd) }
        return socket
    }

    /// Connects to the stream socket at `path`.
    package static func connect(path: String) throws(SystemError) -> OwnedDescriptor {
        let fd = try Posix.check("connect to \(path)", csluice_connect_unix(path))
        return OwnedDescriptor(takingOwnershipOfDescriptor: fd)
    }

    /// Accepts one connection (close-on-exec).
    package static func accept(_ socket: CInt, nonBlocking: Bool = false) throws(SystemError) -> OwnedDescriptor {
        let fd = try Posix.check("accept4", csluice_accept(socket, nonBlocking ? 1 : 0))
        return OwnedDescriptor(takingOwnershipOfDescriptor: fd)
    }
}

/// Small descriptor utilities that are not socket-specific.
package enum Descriptors {
    /// `/dev/net/tun` opened O_RDWR|O_CLOEXEC and attached to no device yet (the TUN clone descriptor); whoever
    /// holds CAP_NET_ADMIN attaches it with TUNSETIFF.
    /// - Note: the caller owns the returned descriptor.
    package static func openTunClone() throws(SystemError) -> OwnedDescriptor {
        let fd = try Posix.call("open /dev/net/tun") { open("/dev/net/tun", O_RDWR | O_CLOEXEC) }
        return OwnedDescriptor(takingOwnershipOfDescriptor: fd)
    }

    /// A close-on-exec pipe: (read end, write end).
    package static func pipe() throws(SystemError) -> (read: OwnedDescriptor, write: OwnedDescriptor) {
        var fds: [CInt] = [-1, -1]
        try Posix.check("pipe2", csluice_pipe(&fds))
        return (
            OwnedDescriptor(takingOwnershipOfDescriptor: fds[0]), OwnedDescriptor(takingOwnershipOfDescriptor: fds[1])
        )
    }

    /// Sets or clears O_NONBLOCK.
    package static func setNonBlocking(_ fd: CInt, _ on: Bool = true) throws(SystemError) {
        try Posix.check("fcntl O_NONBLOCK", csluice_set_nonblocking(fd, on ? 1 : 0))
    }

    /// Waits until `fd` is readable or hung up. Returns false on timeout.
    package static func waitReadable(_ fd: CInt, timeoutMilliseconds: Int32) throws(SystemError) -> Bool {
        try Posix.check("poll", csluice_poll_readable(fd, timeoutMilliseconds)) == 1
    }

    /// Waits until `fd` is writable. Returns false on timeout.
    package static func waitWritable(_ fd: CInt, timeoutMilliseconds: Int32) throws(SystemError) -> Bool {
        try Posix.check("poll", csluice_poll_writable(fd, timeoutMilliseconds)) == 1
    }

    /// Writes all of `bytes`, retrying short writes and EINTR.
    package static func writeAll(_ fd: CInt, _ bytes: [UInt8]) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let start = offset
            let n = try Posix.call("write") {
                bytes.withUnsafeBytes { raw in Glibc.write(fd, raw.baseAddress! + start, raw.count - start) }
            }
            offset += n
        }
    }

    /// One `read` of up to `maxBytes`; empty on EOF.
    package static func read(_ fd: CInt, maxBytes: Int = 65536) throws(SystemError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        let n = try Posix.call("read") {
            buffer.withUnsafeMutableBytes { raw in Glibc.read(fd, raw.baseAddress, raw.count) }
        }
        buffer.removeSubrange(n...)
        return buffer
    }
}
