import SluiceNet

/// One route attribute (`struct rtattr` / `struct nlattr`): a type and its payload without padding.
package struct NetlinkAttribute: Sendable, Equatable {
    /// The type with the `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER` bits masked off.
    package var type: UInt16
    package var payload: [UInt8]

    package init(type: UInt16, payload: [UInt8]) {
        self.type = type
        self.payload = payload
    }
}

/// The attributes that follow a fixed header, parsed without trusting any length the kernel (or a fuzzer) wrote.
///
/// Parsing stops at the first attribute whose length is below the 4-byte header or runs past the end, and sets
/// ``isTruncated``; the attributes before it are kept. Lookups return the first attribute of a type, and the
/// typed accessors return nil for a payload of the wrong size, so one bad attribute costs only itself.
package struct NetlinkAttributes: Sendable {
    package private(set) var all: [NetlinkAttribute] = []
    /// An attribute header was inconsistent with the bytes available; later attributes were not read.
    package private(set) var isTruncated = false

    /// Parses `bytes` from `offset` to the end.
    package init(_ bytes: NetlinkBytes, from offset: Int) {
        var cursor = offset
        while cursor < bytes.count {
            guard let length = bytes.u16(at: cursor), let rawType = bytes.u16(at: cursor + 2),
                Int(length) >= NetlinkConstant.attributeHeaderSize,
                let payload = bytes.slice(
                    at: cursor + NetlinkConstant.attributeHeaderSize,
                    count: Int(length) - NetlinkConstant.attributeHeaderSize)
            else {
                isTruncated = true
                return
            }
            all.append(NetlinkAttribute(type: rawType & NetlinkConstant.attributeTypeMask, payload: payload))
            // The last attribute may legitimately lack its trailing padding.
            cursor += NetlinkConstant.align(Int(length))
        }
    }

    package init(_ payload: [UInt8]) {
        self.init(NetlinkBytes(payload), from: 0)
    }

    package subscript(type: UInt16) -> [UInt8]? {
        all.first { $0.type == type }?.payload
    }

    package func u8(_ type: UInt16) -> UInt8? {
        guard let payload = self[type], payload.count == 1 else { return nil }
        return payload[0]
    }

    package func u16(_ type: UInt16) -> UInt16? {
        guard let payload = self[type], payload.count == 2 else { return nil }
        return NetlinkBytes(payload).u16(at: 0)
    }

    package func u32(_ type: UInt16) -> UInt32? {
        guard let payload = self[type], payload.count == 4 else { return nil }
        return NetlinkBytes(payload).u32(at: 0)
    }

    /// A NUL-terminated string attribute (interface names, link kinds). Bytes after the first NUL are ignored and
    /// invalid UTF-8 becomes U+FFFD rather than failing.
    package func string(_ type: UInt16) -> String? {
        guard let payload = self[type] else { return nil }
        let text = payload.prefix { $0 != 0 }
        return String(decoding: text, as: UTF8.self)
    }

    package func address(_ type: UInt16) -> IPAddress? {
        guard let payload = self[type] else { return nil }
        return IPAddress(netlinkBytes: payload)
    }

    /// The attributes nested inside attribute `type` (e.g. `IFLA_LINKINFO`).
    package func nested(_ type: UInt16) -> NetlinkAttributes? {
        guard let payload = self[type] else { return nil }
        return NetlinkAttributes(payload)
    }
}
