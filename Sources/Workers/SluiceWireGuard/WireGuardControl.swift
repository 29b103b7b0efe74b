import SluiceNet

/// How the keeper configures and reads one link's WireGuard device, whichever backend runs it: wireguard-go over its
/// UAPI socket (``UAPIControl``) or the kernel module over generic netlink.
///
/// Both speak in ``WireGuardUAPI``'s model: ``WireGuardUAPI/DeviceSettings`` in, ``WireGuardUAPI/DeviceStatus`` out,
/// with endpoints reported as ``WireGuardUAPI/endpointText(_:)`` writes them, so that the keeper compares a
/// re-resolved address with the device's endpoint the same way for both.
package protocol WireGuardControl: Sendable {
    /// `wireguard-go` or `kernel`, as status shows it.
    var backendName: String { get }

    /// The device's listen port, fwmark and peers with their endpoints, handshakes and counters.
    func status(link: String) throws -> WireGuardUAPI.DeviceStatus

    /// Configures the device. With `replacePeers` (a new device) all peers are replaced, like `wg setconf`; without
    /// it the listed peers are updated in place and `removePeers` removed, like `wg syncconf`.
    func set(link: String, _ settings: WireGuardUAPI.DeviceSettings, replacePeers: Bool, removePeers: [[UInt8]]) throws

    /// Changes only one existing peer's endpoint (after re-resolving its name).
    func setEndpoint(link: String, publicKey: [UInt8], endpoint: SocketEndpoint) throws
}

/// wireguard-go's UAPI socket, `/var/run/wireguard/NAME.sock`.
package struct UAPIControl: WireGuardControl {
    package init() {}

    package var backendName: String { "wireguard-go" }

    package func status(link: String) throws -> WireGuardUAPI.DeviceStatus {
        try UAPIClient.status(path: WireGuardGo.socketPath(link: link))
    }

    package func set(link: String, _ settings: WireGuardUAPI.DeviceSettings, replacePeers: Bool, removePeers: [[UInt8]])
        throws
    {
        try UAPIClient.set(
            path: WireGuardGo.socketPath(link: link),
            request: WireGuardUAPI.setRequest(settings, replacePeers: replacePeers, removePeers: removePeers))
    }

    package func setEndpoint(link: String, publicKey: [UInt8], endpoint: SocketEndpoint) throws {
        try UAPIClient.set(
            path: WireGuardGo.socketPath(link: link),
            request: WireGuardUAPI.setEndpointRequest(publicKey: publicKey, endpoint: endpoint))
    }
}
