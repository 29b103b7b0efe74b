import SluiceConfig
import SluiceNet
import SluiceNetlink
import SluiceOutbounds
import SluiceSystem
import SluiceTestSupport
import Testing

@testable import SluiceWireGuard

#if canImport(Glibc)
import Glibc
#endif

/// Whether this kernel has the wireguard family. It does not on the development machine (no module, none loadable):
/// there these tests check that the kernel backend says so clearly; with the module they are skipped, and the
/// codec tests are what covers the messages.
let kernelWireGuardPresent = KernelWireGuard.isAvailable()

@Suite("Kernel WireGuard backend without the module", .enabled(if: !kernelWireGuardPresent, "the module is loaded"))
struct KernelWireGuardTests {
    @Test("not available, and every control call says the module is not loaded")
    func reportsTheMissingModule() throws {
        #expect(KernelWireGuard.isAvailable() == false)
        #expect(KernelWireGuard.isAvailable(netlink: try GenericNetlink()) == false)
        let control = KernelControl()
        #expect(control.backendName == "kernel")
        let settings = WireGuardUAPI.DeviceSettings(privateKey: [UInt8](repeating: 1, count: 32))
        let calls: [(String, () throws -> Void)] = [
            ("status", { _ = try control.status(link: "wg0") }),
            ("set", { try control.set(link: "wg0", settings, replacePeers: true, removePeers: []) }),
            (
                "setEndpoint",
                {
                    try control.setEndpoint(
                        link: "wg0", publicKey: [UInt8](repeating: 2, count: 32),
                        endpoint: SocketEndpoint("192.0.2.1:51820")!)
                }
            ),
        ]
        for (name, call) in calls {
            do {
                try call()
                Issue.record("\(name) succeeded")
            } catch let error as SystemError {
                #expect(error.errno == ENOENT)
                #expect(
                    error.description.hasPrefix(
                        "generic netlink family wireguard not found: the wireguard kernel module is not loaded"))
            }
        }
    }

    @Test("the module's answers about a link are explained")
    func explainsLinkErrors() {
        let missing = KernelControl.explain(SystemError("WG_CMD_GET_DEVICE wg9", errno: ENODEV), link: "wg9")
        #expect(missing.call == "WG_CMD_GET_DEVICE wg9: there is no interface wg9")
        let foreign = KernelControl.explain(SystemError("WG_CMD_SET_DEVICE wg9", errno: EOPNOTSUPP), link: "wg9")
        #expect(foreign.call == "WG_CMD_SET_DEVICE wg9: wg9 is not a kernel wireguard interface")
        #expect(KernelControl.explain(SystemError("x", errno: EPERM), link: "wg9") == SystemError("x", errno: EPERM))
    }

    @Test(
        "createLink: ip link add NAME type wireguard fails with a clear EOPNOTSUPP",
        .enabled(if: geteuid() == 0, "needs root for a network namespace"))
    func createLinkWithoutTheModule() throws {
        let namespace = "slwg-\(getpid())"
        let (status, output) = Shell.run("ip netns add \(namespace)")
        try #require(status == 0, "ip netns add: \(output)")
        defer { _ = Shell.run("ip netns del \(namespace)") }
        let error = try NetworkNamespace.run(in: namespace) { () -> SystemError? in
            do throws(SystemError) {
                try KernelWireGuard.createLink(name: "wg0", netlink: try RouteNetlink())
                return nil
            } catch {
                return error
            }
        }
        let failure = try #require(error)
        #expect(failure.errno == EOPNOTSUPP)
        #expect(failure.call.hasPrefix("RTM_NEWLINK wg0 type wireguard"))
        #expect(failure.call.contains("Unknown device type"))
        #expect(failure.call.contains("this kernel has no wireguard link type"))
    }

    @Test(
        "keepalive.backend: kernel without the module: the configuration is refused, saying what to use instead; auto takes wireguard-go"
    )
    func kernelBackendRefused() throws {
        let key = String(repeating: "A", count: 43) + "="
        let yaml = """
            keepalive: {backend: kernel}
            wireguard:
              - {name: wgk0, private-key: "\(key)", peers: [{public-key: "\(key)", allowed-ips: [10.0.0.2/32]}]}
            """
        var configuration = try #require(
            ConfigLoader.load(yaml: yaml, fileName: "k.yaml", catalog: OutboundRegistry.catalog).configuration)
        let service = KeepaliveService()
        let (outcome, detail) = service.apply(configuration, generation: 1)
        #expect(outcome == .rejected)
        #expect(detail.contains("keepalive.backend is kernel, but this kernel has no wireguard module"), "\(detail)")
        #expect(detail.contains("use backend: auto or wireguard-go"))
        configuration.wireguard = []
        #expect(service.apply(configuration, generation: 2).0 == .applied, "no links: nothing to refuse")
        service.shutdown(graceMilliseconds: 100)
    }
}
