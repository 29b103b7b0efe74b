import SluiceNet

/// The external controller (mihomo's keys): the Clash REST API that dashboards and clients use, served by
/// sluiced itself.
public struct ControllerConfiguration: Sendable, Equatable, Codable {
    /// `external-controller`: TCP address to serve on; nil = no TCP listener. mihomo's `:9090` means every
    /// address.
    public var listen: SocketEndpoint?
    /// `external-controller-unix`: a Unix socket path (needs no secret: the file mode guards it, as in mihomo).
    public var unixSocket: String?
    /// `secret`: the Bearer token every request must carry (WebSocket upgrades may pass it as `?token=`).
    public var secret = ""
    /// `external-ui`: a folder of static files (a dashboard build) served under `/ui/`.
    public var externalUI: String?
    /// `external-controller-cors.allow-origins` (default every origin, as mihomo).
    public var allowOrigins: [String] = ["*"]
    /// `external-controller-cors.allow-private-network`: answer Chrome's private-network preflight.
    public var allowPrivateNetwork = true

    public init() {}

    public var isEnabled: Bool { listen != nil || unixSocket != nil }
}
