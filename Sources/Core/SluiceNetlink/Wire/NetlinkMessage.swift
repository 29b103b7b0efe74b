/// One netlink message (`struct nlmsghdr` and its payload) as received from the kernel.
package struct NetlinkMessage: Sendable, Equatable {
    package var type: UInt16
    package var flags: UInt16
    package var sequence: UInt32
    package var portID: UInt32
    /// The bytes after the 16-byte header, up to `nlmsg_len`.
    package var payload: [UInt8]

    package init(type: UInt16, flags: UInt16, sequence: UInt32, portID: UInt32, payload: [UInt8]) {
        self.type = type
        self.flags = flags
        self.sequence = sequence
        self.portID = portID
        self.payload = payload
    }

    /// The messages of one datagram, and whether parsing stopped early on an inconsistent length.
    package struct Batch: Sendable {
        package var messages: [NetlinkMessage] = []
        package var isMalformed = false
    }

    /// Splits a datagram into messages. A datagram may hold several messages (a dump packs as many as fit), each
    /// padded to 4 bytes. A header whose `nlmsg_len` is below 16 or beyond the datagram stops the split: the
    /// framing is lost, so nothing after it can be trusted.
    package static func split(datagram: [UInt8]) -> Batch {
        let bytes = NetlinkBytes(datagram)
        var batch = Batch()
        var cursor = 0
        while cursor < bytes.count {
            guard let length = bytes.u32(at: cursor), let type = bytes.u16(at: cursor + 4),
                let flags = bytes.u16(at: cursor + 6), let sequence = bytes.u32(at: cursor + 8),
                let portID = bytes.u32(at: cursor + 12),
                Int(length) >= NetlinkConstant.headerSize, Int(length) <= bytes.count - cursor,
                let payload = bytes.slice(
                    at: cursor + NetlinkConstant.headerSize, count: Int(length) - NetlinkConstant.headerSize)
            else {
                batch.isMalformed = true
                break
            }
            batch.messages.append(
                NetlinkMessage(type: type, flags: flags, sequence: sequence, portID: portID, payload: payload))
            cursor += NetlinkConstant.align(Int(length))
        }
        return batch
    }

    /// The outcome carried by an `NLMSG_ERROR` message: `errno` 0 is an ACK; otherwise the positive errno and the
    /// kernel's extended-ack text when it sent one.
    package struct ErrorReply: Sendable, Equatable {
        package var errno: Int32
        package var kernelMessage: String?
    }

    /// Decodes this message as `NLMSG_ERROR`; nil when it is not one or is too short to say anything.
    package var errorReply: ErrorReply? {
        guard type == NetlinkConstant.messageError else { return nil }
        let bytes = NetlinkBytes(payload)
        guard let code = bytes.i32(at: 0) else { return nil }
        // The kernel stores -errno; guard the one value whose negation would overflow.
        let errno = code == Int32.min ? Int32.max : -code
        var reply = ErrorReply(errno: errno, kernelMessage: nil)
        if flags & NetlinkConstant.flagAckTLVs != 0 {
            // After `int error` comes the failed request's nlmsghdr, followed by its payload unless the kernel
            // capped it (NETLINK_CAP_ACK, or always for ACKs); the extended-ack TLVs come after that.
            var offset = NetlinkConstant.errorHeaderSize
            if flags & NetlinkConstant.flagCapped == 0, let originalLength = bytes.u32(at: 4) {
                offset = 4 + NetlinkConstant.align(Int(originalLength))
            }
            if offset <= bytes.count {
                let attributes = NetlinkAttributes(bytes, from: offset)
                reply.kernelMessage = attributes.string(NetlinkConstant.errorAttributeMessage)
                    .flatMap { $0.isEmpty ? nil : $0 }
            }
        }
        return reply
    }
}
