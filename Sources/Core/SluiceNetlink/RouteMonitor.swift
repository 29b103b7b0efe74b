import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// A non-blocking rtnetlink socket subscribed to change notifications (links, addresses, routes), for an event
/// loop: poll ``descriptor`` for readability, then call ``drain()``.
///
/// Notifications are lossy by design: when they arrive faster than they are read, the kernel drops them and
/// reports ENOBUFS once. ``drain()`` then sets ``missedEvents``, and the owner must re-read the state it cares
/// about with ``RouteNetlink`` instead of trusting the event stream.
///
/// Kernel quirk: when an interface goes down (or loses its last address), the kernel flushes the IPv4 routes
/// through it without sending `RTM_DELROUTE` for them. Treat a link-down or address-removal event as "routes via
/// this interface may be gone" and re-read them.
///
/// - Note: Not thread-safe. The socket belongs to the network namespace of the thread that created it.
package final class RouteMonitor {
    /// Multicast groups to subscribe to. Raw values are the legacy `RTMGRP_*` bits (bit N-1 for group N).
    package struct Groups: OptionSet, Sendable {
        package let rawValue: UInt32
        package init(rawValue: UInt32) { self.rawValue = rawValue }

        /// `RTMGRP_LINK`: interfaces appearing, changing, disappearing.
        package static let link = Groups(rawValue: 0x1)
        /// `RTMGRP_IPV4_IFADDR` / `RTMGRP_IPV6_IFADDR`.
        package static let ipv4Address = Groups(rawValue: 0x10)
        package static let ipv6Address = Groups(rawValue: 0x100)
        /// `RTMGRP_IPV4_ROUTE` / `RTMGRP_IPV6_ROUTE`: every table, including local and cached routes.
        package static let ipv4Route = Groups(rawValue: 0x40)
        package static let ipv6Route = Groups(rawValue: 0x400)

        /// Links, addresses and routes of both families.
        package static let all: Groups = [.link, .ipv4Address, .ipv6Address, .ipv4Route, .ipv6Route]

        /// The `RTNLGRP_*` group numbers for `NETLINK_ADD_MEMBERSHIP`.
        var groupNumbers: [UInt32] {
            (0..<32).filter { rawValue & (1 << $0) != 0 }.map { UInt32($0) + 1 }
        }
    }

    /// The most datagrams one ``drain()`` reads, so a flood cannot starve the caller's loop; poll() reports the
    /// descriptor readable again when more are queued.
    package static let maximumDatagramsPerDrain = 256

    private let socket: NetlinkSocket

    /// Whether the kernel dropped notifications (ENOBUFS) before or during the last ``drain()``.
    package private(set) var missedEvents = false

    /// Opens the socket and joins `groups`. Its receive buffer is raised to 1 MiB (past `rmem_max` with
    /// CAP_NET_ADMIN) so a burst such as a full routing-table flush is less likely to overflow.
    package init(groups: Groups = .all) throws(SystemError) {
        socket = try NetlinkSocket(groups: groups.groupNumbers, nonBlocking: true)
        let size: CInt = 1 << 20
        if socket.setOption(SOL_SOCKET, SO_RCVBUFFORCE, size) < 0 {
            socket.setOption(SOL_SOCKET, SO_RCVBUF, size)
        }
    }

    /// The socket's descriptor, for poll()/epoll (readable = events queued). Owned by this object.
    package var descriptor: CInt { socket.descriptor.rawValue }

    /// The events received since the last call, in kernel order, without blocking. Notifications that do not
    /// decode are skipped. Sets ``missedEvents`` when the kernel reported lost notifications.
    package func drain() -> [RouteEvent] {
        missedEvents = false
        var events: [RouteEvent] = []
        for _ in 0..<Self.maximumDatagramsPerDrain {
            do throws(SystemError) {
                guard let datagram = try socket.receive(dontWait: true, operation: "RouteMonitor") else { break }
                events += RouteEvent.decode(datagram: datagram)
            } catch  where error.errno == ENOBUFS {
                // The queue overflowed; the kernel reports it once and keeps delivering after this.
                missedEvents = true
            } catch  where error.errno == EMSGSIZE {
                // An oversized notification was consumed and dropped; keep going with the rest.
                missedEvents = true
            } catch {
                break
            }
        }
        return events
    }
}

@available(*, unavailable, message: "RouteMonitor is not thread-safe")
extension RouteMonitor: Sendable {}
