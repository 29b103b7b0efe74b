import CSluice
import Foundation
import IPC
import Logging
import SluiceConfig
import SluiceNet
import SluiceNetlink
import SluiceOutbounds
import SluiceRouting
import SluiceRules
import SluiceSystem
import Synchronization
import WorkerRuntime

#if canImport(Glibc)
import Glibc
#endif

// Routing events: the TUN going down, the egress interface following the default route.

extension RunningDataPlane {
    /// Watches routing events: the TUN going down (said clearly: its traffic is dropped
    /// until it is up again) and, with auto-detect-interface, the egress interface, which
    /// is re-read on any link, address or route event (the kernel drops an interface's
    /// routes on link-down without announcing them, so link events count too).
    func watchRouting(followEgress: Bool) {
        guard let monitor = try? RouteMonitor(groups: .all), let netlink = try? RouteNetlink() else {
            logger.warning("cannot watch routing changes; auto-detect-interface keeps \(egress.interface ?? "none")")
            return
        }
        var pfd = pollfd(fd: monitor.descriptor, events: Int16(POLLIN), revents: 0)
        var tunUp = true
        while !stopping.load(ordering: .relaxed) {
            pfd.revents = 0
            guard poll(&pfd, 1, 500) > 0 else { continue }
            let events = monitor.drain()
            guard !events.isEmpty || monitor.missedEvents else { continue }
            for case .link(let link, let removed) in events where link.index == interfaceIndex {
                let up = link.isUp && !removed
                if up != tunUp {
                    tunUp = up
                    if up {
                        // The kernel dropped the device's routes (and IPv6 addresses) when it
                        // went down: put them back, idempotently.
                        for prefix in wantedAddresses { try? netlink.addAddress(prefix, interface: interfaceIndex) }
                        do {
                            try autoRoute?.install(netlink)
                            logger.notice("\(link.name) is up again; addresses and routes restored, traffic flows")
                        } catch {
                            logger.error(
                                "\(link.name) is up again, but restoring its routes failed: \(error); restart sluice")
                        }
                    } else {
                        logger.error(
                            "\(link.name) went down: traffic routed into it is dropped until it is up again (`ip link set \(link.name) up`, or restart sluice)"
                        )
                    }
                }
            }
            guard followEgress else { continue }
            let detected = (try? Self.detectEgress(netlink, excluding: interfaceIndex)) ?? nil
            if detected != egress.interface {
                logger.info(
                    "auto-detect-interface: egress changed from \(egress.interface ?? "none") to \(detected ?? "none")")
                egress.interface = detected
            }
        }
    }

    static func detectEgress(_ netlink: RouteNetlink, excluding tunIndex: Int32) throws(SystemError) -> String? {
        var route = try netlink.defaultRoute(family: .v4)
        if route == nil { route = try netlink.defaultRoute(family: .v6) }
        guard let index = route?.outputInterface, index != tunIndex else { return nil }
        return try netlink.links().first { $0.index == index }?.name
    }

    static func writeSysctl(_ path: String, _ value: String) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = value.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }
}
