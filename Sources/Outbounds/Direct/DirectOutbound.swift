import SluiceConfig
import SluiceNet
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// DIRECT: a plain socket, marked so policy routing sends it around the TUN, optionally
/// bound to an interface (a `direct` proxy's `interface-name`, e.g. a WireGuard link).
/// A fake destination is dialed at its name's real address, looked up here.
package struct DirectOutbound: Outbound {
    package let name: String
    package let dial: DialSettings
    /// A `direct` proxy's `ip-version`.
    package var ipVersion: IPVersion = .dual
    /// A `direct` proxy's `udp`.
    package var udp = true

    package init(name: String, dial: DialSettings, ipVersion: IPVersion = .dual, udp: Bool = true) {
        self.name = name
        self.dial = dial
        self.ipVersion = ipVersion
        self.udp = udp
    }

    package var sendsNames: Bool { false }

    package func planTCP(to target: FlowTarget) throws(OutboundError) -> TCPPlan {
        let preference = AddressPreference(ipVersion, clientIsIPv4: target.endpoint.address.isIPv4)
        if let name = target.name {
            return TCPPlan(hop: .name(name, port: target.endpoint.port, preference))
        }
        guard preference.allows(target.endpoint.address) else {
            throw .addressFamilyExcluded(ipVersion: ipVersion, destination: target.endpoint.address)
        }
        return TCPPlan(hop: .endpoint(target.endpoint))
    }

    package func connectTCP(to hop: InetEndpoint) throws(SystemError) -> OwnedDescriptor {
        try dial.connectTCP(to: hop)
    }

    package var udpUnsupportedReason: String? { udp ? nil : "udp: false on this direct proxy" }

    package func openUDP(family: CInt) throws -> any UDPSession {
        DirectUDPSession(socket: try dial.udpSocket(family: family), ipVersion: ipVersion)
    }
}
