import SluiceNet

/// The `tun:` section: the TUN device, its addresses and routes, and DNS hijacking.
public struct TunConfiguration: Sendable, Equatable, Codable {
    public var enable = false
    /// The only stack sluice implements: TCP is NATed back into the kernel; see DESIGN.md.
    public var stack: Stack = .system
    /// Interface name (IFNAMSIZ: 1...15 bytes, no '/', no whitespace).
    public var device = "sluice0"
    /// An already-open TUN descriptor inherited from the parent (`device-url: fd://N`); nil means open `device`.
    public var inheritedFileDescriptor: Int32?
    public var mtu = 9000
    /// mihomo's `gso`: TCP segmentation and checksum offload on the TUN (IFF_VNET_HDR, TUNSETOFFLOAD), so that TCP
    /// moves through the device as 64 KiB super-packets. On by default on Linux, as in sing-box.
    public var gso = true
    public var inet4Address: [IPPrefix] = [IPPrefix("172.19.0.1/30")!]
    public var inet6Address: [IPPrefix] = [IPPrefix("fdfe:dcba:9876::1/126")!]
    public var autoRoute = false
    public var autoDetectInterface = false
    public var strictRoute = false
    /// DNS queries caught on the TUN and answered by the dns-worker (`dns-hijack` plus the older `dns-listen`).
    public var dnsHijack: [DNSHijack] = []
    /// Routes sent into the TUN when `auto-route` is on (empty: the default routes).
    public var routeAddress: [IPPrefix] = []
    /// Routes kept out of the TUN when `auto-route` is on.
    public var routeExcludeAddress: [IPPrefix] = []
    /// Idle timeout of a UDP mapping, in seconds.
    public var udpTimeout = 300
    public var iproute2TableIndex = 2022
    public var iproute2RuleIndex = 9000
    /// The fwmark put on sluice's own outbound sockets so policy routing keeps them off the TUN.
    public var routingMark: UInt32 = 0x2d0
    public var includeInterface: [String] = []
    public var excludeInterface: [String] = []

    public init() {}

    /// TUN network stacks; sluice only has `system`.
    public enum Stack: String, Sendable, Equatable, Codable {
        case system
    }
}

/// One `dns-hijack` entry: which DNS traffic entering the TUN is answered by sluice.
public struct DNSHijack: Sendable, Equatable, Codable, CustomStringConvertible {
    /// Which transport the entry catches.
    public enum Transport: String, Sendable, Equatable, Codable {
        case udp, tcp, both
    }

    public var transport: Transport
    /// The destination address to catch; nil means any address (`any:53`).
    public var address: IPAddress?
    public var port: UInt16

    public init(transport: Transport, address: IPAddress?, port: UInt16) {
        self.transport = transport
        self.address = address
        self.port = port
    }

    public var description: String {
        let scheme = transport == .both ? "" : "\(transport.rawValue)://"
        let host: String
        switch address {
        case nil: host = "any"
        case .v6(let v6)?: host = "[\(v6)]"
        case .v4(let v4)?: host = v4.description
        }
        return "\(scheme)\(host):\(port)"
    }
}
