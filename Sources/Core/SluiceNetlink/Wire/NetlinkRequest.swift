import SluiceNet

/// Builds one netlink request: the `nlmsghdr`, a fixed family header, then 4-byte-aligned attributes.
///
/// The length and sequence number are filled in by ``finish(sequence:)`` just before sending. Integers are written
/// in host byte order, addresses in network byte order.
package struct NetlinkRequest: Sendable {
    package private(set) var bytes: [UInt8]
    /// The message type, kept for error messages.
    package let type: UInt16

    package init(type: UInt16, flags: UInt16) {
        self.type = type
        bytes = []
        bytes.reserveCapacity(256)
        append(UInt32(0))  // nlmsg_len, patched in finish()
        append(type)
        append(flags)
        append(UInt32(0))  // nlmsg_seq
        append(UInt32(0))  // nlmsg_pid: 0 lets the kernel fill in our port id
    }

    package mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
    }

    package mutating func append(bytes more: [UInt8]) {
        bytes.append(contentsOf: more)
    }

    /// The length so far: a mark to pass to ``discard(from:)``.
    package var count: Int { bytes.count }

    /// Drops everything from `mark` on, like the kernel's `nla_nest_cancel`: for an attribute (or a nest begun with
    /// ``beginNested(_:)``) that turned out not to fit the message. `mark` must come from ``count``.
    package mutating func discard(from mark: Int) {
        precondition(mark >= NetlinkConstant.headerSize && mark <= bytes.count, "discard mark outside the request")
        bytes.removeSubrange(mark...)
    }

    private mutating func pad() {
        while bytes.count % 4 != 0 { bytes.append(0) }
    }

    // MARK: Fixed headers

    /// `struct genlmsghdr`: the command and interface version of a generic netlink family's message.
    package mutating func appendGenericHeader(command: UInt8, version: UInt8) {
        append(command)
        append(version)
        append(UInt16(0))  // reserved
    }

    /// `struct ifinfomsg`. `change` selects which bits of `flags` apply (see `RouteNetlink.setLink`).
    package mutating func appendInterfaceInfo(family: UInt8, index: Int32, flags: UInt32, change: UInt32) {
        append(family)
        append(UInt8(0))  // __ifi_pad
        append(UInt16(0))  // ifi_type
        append(index)
        append(flags)
        append(change)
    }

    /// `struct ifaddrmsg`.
    package mutating func appendInterfaceAddress(
        family: UInt8, prefixLength: UInt8, flags: UInt8, scope: UInt8, index: Int32
    ) {
        append(family)
        append(prefixLength)
        append(flags)
        append(scope)
        append(UInt32(bitPattern: index))
    }

    /// `struct rtmsg`; `struct fib_rule_hdr` has the same layout (family, dst_len, src_len, tos, table, two bytes,
    /// a type/action byte, u32 flags), so rules use this too.
    package mutating func appendRouteHeader(
        family: UInt8, destinationLength: UInt8, sourceLength: UInt8, tos: UInt8 = 0, table: UInt8,
        protocol: UInt8, scope: UInt8, type: UInt8, flags: UInt32
    ) {
        append(family)
        append(destinationLength)
        append(sourceLength)
        append(tos)
        append(table)
        append(`protocol`)
        append(scope)
        append(type)
        append(flags)
    }

    // MARK: Attributes

    package mutating func addAttribute(_ type: UInt16, _ payload: [UInt8]) {
        append(UInt16(NetlinkConstant.attributeHeaderSize + payload.count))
        append(type)
        bytes.append(contentsOf: payload)
        pad()
    }

    package mutating func addAttribute<T: FixedWidthInteger>(_ type: UInt16, integer value: T) {
        addAttribute(type, withUnsafeBytes(of: value) { Array($0) })
    }

    /// A NUL-terminated string, as the kernel's `NLA_NUL_STRING` / `NLA_STRING` policies accept.
    package mutating func addAttribute(_ type: UInt16, string: String) {
        addAttribute(type, Array(string.utf8) + [0])
    }

    package mutating func addAttribute(_ type: UInt16, address: IPAddress) {
        addAttribute(type, address.netlinkBytes)
    }

    /// Opens a nested attribute; pass the result to ``endNested(_:)``.
    package mutating func beginNested(_ type: UInt16) -> Int {
        let start = bytes.count
        append(UInt16(0))
        append(type | NetlinkConstant.attributeNested)
        return start
    }

    package mutating func endNested(_ start: Int) {
        let length = UInt16(truncatingIfNeeded: bytes.count - start)
        withUnsafeBytes(of: length) { raw in
            bytes[start] = raw[0]
            bytes[start + 1] = raw[1]
        }
    }

    /// The finished bytes with `nlmsg_len` and `nlmsg_seq` filled in.
    package func finish(sequence: UInt32) -> [UInt8] {
        var result = bytes
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: result.count)) { raw in
            for index in 0..<4 { result[index] = raw[index] }
        }
        withUnsafeBytes(of: sequence) { raw in
            for index in 0..<4 { result[8 + index] = raw[index] }
        }
        return result
    }
}
