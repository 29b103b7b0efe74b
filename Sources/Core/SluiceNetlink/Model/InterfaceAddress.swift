import SluiceNet

/// An address assigned to an interface, decoded from `RTM_NEWADDR` / `RTM_DELADDR`.
package struct InterfaceAddress: Sendable, Equatable {
    package var prefix: IPPrefix
    package var interface: Int32

    /// Decodes `struct ifaddrmsg` + attributes. The interface's own address is `IFA_LOCAL` when present: on
    /// point-to-point links `IFA_ADDRESS` is the peer. IPv6 usually sends only `IFA_ADDRESS`.
    package init?(netlinkPayload payload: [UInt8]) {
        let bytes = NetlinkBytes(payload)
        guard payload.count >= NetlinkConstant.ifaddrmsgSize, let prefixLength = bytes.u8(at: 1),
            let index = bytes.u32(at: 4)
        else { return nil }
        let attributes = NetlinkAttributes(bytes, from: NetlinkConstant.ifaddrmsgSize)
        guard
            let address = attributes.address(NetlinkConstant.ifaLocal)
                ?? attributes.address(NetlinkConstant.ifaAddress),
            let prefix = IPPrefix(address: address, length: Int(prefixLength))
        else { return nil }
        self.prefix = prefix
        self.interface = Int32(bitPattern: index)
    }
}
