import SluiceNet
import SluiceNetlink
import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// The kernel's WireGuard module as a backend: configured and read over generic netlink (family `wireguard`), the
/// way `wg` does it, with ``WireGuardNetlink`` building and parsing the messages.
///
/// Each call opens its own `NETLINK_GENERIC` socket and looks the family id up again: the keeper calls rarely,
/// the socket then always belongs to the calling thread's network namespace, and a module reloaded in between
/// (with a new family id) costs nothing. Needs CAP_NET_ADMIN (the family's commands are `GENL_UNS_ADMIN_PERM`).
///
/// - Note: The development machine this was written on has no wireguard module (and cannot load one), so this path
///   has not run against a kernel there: it is covered by ``WireGuardNetlink``'s byte-level tests (golden bytes,
///   round trips through a model of the kernel's side, splitting, malformed answers) and by the generic netlink
///   tests of the socket it uses.
package struct KernelControl: WireGuardControl {
    package init() {}

    package var backendName: String { "kernel" }

    package func status(link: String) throws -> WireGuardUAPI.DeviceStatus {
        let netlink = try GenericNetlink()
        let family = try netlink.family(named: WireGuardNetlink.familyName)
        let request = try WireGuardNetlink.getDeviceRequest(familyID: family.id, link: link)
        let messages: [GenericNetlink.Message]
        do {
            messages = try netlink.dump(request, operation: "WG_CMD_GET_DEVICE \(link)")
        } catch {
            throw Self.explain(error, link: link)
        }
        return try WireGuardNetlink.parseDevice(messages)
    }

    /// Sends the messages of ``WireGuardNetlink/setDeviceRequests(familyID:link:settings:replacePeers:removePeers:messageLimit:)``
    /// one after the other, each acknowledged before the next. As with `wg`, a failure part-way leaves the earlier
    /// messages applied; the keeper sets the whole configuration again on its next attempt.
    package func set(link: String, _ settings: WireGuardUAPI.DeviceSettings, replacePeers: Bool, removePeers: [[UInt8]])
        throws
    {
        let netlink = try GenericNetlink()
        let family = try netlink.family(named: WireGuardNetlink.familyName)
        let requests = try WireGuardNetlink.setDeviceRequests(
            familyID: family.id, link: link, settings: settings, replacePeers: replacePeers, removePeers: removePeers)
        for (index, request) in requests.enumerated() {
            let part = requests.count > 1 ? " (message \(index + 1) of \(requests.count))" : ""
            do {
                _ = try netlink.exchange(request, operation: "WG_CMD_SET_DEVICE \(link)\(part)")
            } catch {
                throw Self.explain(error, link: link)
            }
        }
    }

    package func setEndpoint(link: String, publicKey: [UInt8], endpoint: SocketEndpoint) throws {
        let netlink = try GenericNetlink()
        let family = try netlink.family(named: WireGuardNetlink.familyName)
        let request = try WireGuardNetlink.setEndpointRequest(
            familyID: family.id, link: link, publicKey: publicKey, endpoint: endpoint)
        do {
            _ = try netlink.exchange(request, operation: "WG_CMD_SET_DEVICE \(link) endpoint")
        } catch {
            throw Self.explain(error, link: link)
        }
    }

    /// `error` with what the module's answers mean for a link: ENODEV (no such interface) and EOPNOTSUPP (an
    /// interface that is not a wireguard one, e.g. a wireguard-go TUN of the same name).
    static func explain(_ error: SystemError, link: String) -> SystemError {
        switch error.errno {
        case ENODEV: SystemError("\(error.call): there is no interface \(link)", errno: error.errno)
        case EOPNOTSUPP: SystemError("\(error.call): \(link) is not a kernel wireguard interface", errno: error.errno)
        default: error
        }
    }
}

/// Whether the kernel backend can be used, and creating its links.
///
/// - Note: On the development machine the wireguard module is absent, so ``isAvailable(netlink:)`` is false there and
///   ``createLink(name:netlink:)`` fails with EOPNOTSUPP; the generic netlink and `RTM_NEWLINK` paths beneath are
///   tested against the real kernel with other families and link kinds.
package enum KernelWireGuard {
    /// Whether the `wireguard` generic netlink family is registered. Asking makes the kernel load the module if it is
    /// installed but not loaded (it declares the family as a module alias), so true means `ip link add NAME type
    /// wireguard` will work too.
    package static func isAvailable(netlink: GenericNetlink) -> Bool {
        (try? netlink.family(named: WireGuardNetlink.familyName)) != nil
    }

    /// ``isAvailable(netlink:)`` with a socket of its own, in the calling thread's network namespace.
    package static func isAvailable() -> Bool {
        guard let netlink = try? GenericNetlink() else { return false }
        return isAvailable(netlink: netlink)
    }

    /// Creates the kernel WireGuard interface `name`, down and unconfigured: `ip link add NAME type wireguard`.
    /// - Throws: EEXIST when an interface called `name` exists (the caller decides whether to adopt it: its
    ///   ``LinkInfo/kind`` is `wireguard` for a kernel one); EOPNOTSUPP saying that the module is missing.
    package static func createLink(name: String, netlink: RouteNetlink) throws(SystemError) {
        do {
            try netlink.addLink(name: name, kind: WireGuardNetlink.familyName)
        } catch {
            guard error.errno == EOPNOTSUPP else { throw error }
            throw SystemError(
                "\(error.call): this kernel has no wireguard link type (the wireguard module is not loaded and could "
                    + "not be loaded)", errno: error.errno)
        }
    }
}
