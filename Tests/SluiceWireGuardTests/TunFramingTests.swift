import SluiceWireGuard
import Testing

/// Which TUN flags a wireguard-go expects of the descriptor it is given (`WG_TUN_FD`), from its `--version`.
@Suite("wireguard-go TUN framing")
struct TunFramingTests {
    @Test(
        "up to 0.0.20230223 a given descriptor carries the packet-information header; later releases read IFF_VNET_HDR back",
        arguments: [
            ("wireguard-go v0.0.20220316", WireGuardGo.TunFraming.packetInformation),  // Debian bookworm
            ("wireguard-go v0.0.20201118\n\nUserspace WireGuard daemon for linux-amd64.", .packetInformation),
            ("wireguard-go v0.0.20230223", .packetInformation),
            ("wireguard-go v0.0.20250515", .virtioHeader),
            ("wireguard-go v0.0.20250522", .virtioHeader),
        ])
    func known(output: String, framing: WireGuardGo.TunFraming) {
        #expect(WireGuardGo.TunFraming(versionOutput: output) == framing)
    }

    @Test(
        "output that names no wireguard-go version gives nil",
        arguments: ["", "Usage: wg-wrapper", "wireguard-go v1.2", "wireguard-go v0.0.2022"])
    func unknown(output: String) {
        #expect(WireGuardGo.TunFraming(versionOutput: output) == nil)
    }

    @Test(
        "the installed wireguard-go answers --version without creating an interface",
        .enabled(if: WireGuardGo.executable(environment: [:]) != nil))
    func installed() throws {
        let executable = try #require(WireGuardGo.executable(environment: [:]))
        let line = try WireGuardGo.version(executable: executable)
        #expect(WireGuardGo.TunFraming(versionOutput: line) != nil, "\(executable) --version: \(line)")
    }
}
