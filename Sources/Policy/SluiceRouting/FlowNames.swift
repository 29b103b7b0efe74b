import SluiceNet
import SluiceSystem

/// What the router needs from the DNS side to judge a flow: whether it is hijacked DNS, and which name stands behind
/// its destination (a fake address's mapping, or the name a real address was last answered for).
///
/// The tun worker's DNS peer answers; tests give a table. A protocol, so that the router (to be its own target) does
/// not depend on the packet path that owns the peer.
package protocol FlowNames: Sendable {
    /// Whether DNS to `destination` over UDP (or TCP) is hijacked right now.
    func catches(udp: Bool, _ destination: InetEndpoint) -> Bool
    /// Whether `address` lies in a fake-IP range.
    func isFake(_ address: IPAddress) -> Bool
    /// The name behind a fake address; may wait, bounded, for the dns worker. nil: not mapped.
    func name(forFake address: IPAddress) -> String?
    /// The name the dns worker last answered with `address` (a real address).
    func name(forReal address: IPAddress) -> String?
}
