import SluiceNet

/// A change the kernel announced on an rtnetlink multicast group, as ``RouteMonitor/drain()`` returns it.
package enum RouteEvent: Sendable, Equatable {
    /// `RTM_NEWLINK` (created or changed; the kernel also repeats it for unrelated attribute changes) or
    /// `RTM_DELLINK`.
    case link(LinkInfo, removed: Bool)
    /// `RTM_NEWROUTE` / `RTM_DELROUTE` in any table.
    case route(Route, removed: Bool)
    /// `RTM_NEWADDR` / `RTM_DELADDR`.
    case address(IPPrefix, interface: Int32, removed: Bool)

    /// Decodes one notification; nil for other message types and for payloads that do not decode.
    package init?(message: NetlinkMessage) {
        switch message.type {
        case NetlinkConstant.newLink, NetlinkConstant.deleteLink:
            guard let link = LinkInfo(netlinkPayload: message.payload) else { return nil }
            self = .link(link, removed: message.type == NetlinkConstant.deleteLink)
        case NetlinkConstant.newRoute, NetlinkConstant.deleteRoute:
            guard let route = Route(netlinkPayload: message.payload) else { return nil }
            self = .route(route, removed: message.type == NetlinkConstant.deleteRoute)
        case NetlinkConstant.newAddress, NetlinkConstant.deleteAddress:
            guard let address = InterfaceAddress(netlinkPayload: message.payload) else { return nil }
            self = .address(
                address.prefix, interface: address.interface, removed: message.type == NetlinkConstant.deleteAddress)
        default:
            return nil
        }
    }

    /// Decodes every notification in one datagram, skipping what does not decode.
    package static func decode(datagram: [UInt8]) -> [RouteEvent] {
        NetlinkMessage.split(datagram: datagram).messages.compactMap { RouteEvent(message: $0) }
    }
}
