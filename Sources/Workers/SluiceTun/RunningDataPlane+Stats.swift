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

// The counters sluiced collects for `status`, the API and /metrics.

extension RunningDataPlane {
    func stats() -> [StatsReport.Entry] {
        let traffic = registry.totals()
        return [
            // Every connection's payload bytes (TCP and UDP, closed ones included): the API's /traffic.
            .init("traffic.bytes.up", Int64(clamping: traffic.upload)),
            .init("traffic.bytes.down", Int64(clamping: traffic.download)),
            .init("connections.open", Int64(registry.count)),
            .init("tun.packets", Int64(dispatcher.packets.load(ordering: .relaxed))),
            .init("tun.fragments.dropped", Int64(dispatcher.fragmentsDropped.load(ordering: .relaxed))),
            .init("tun.malformed.dropped", Int64(dispatcher.malformedDropped.load(ordering: .relaxed))),
            // Refused by the packet path (limits, ICMP, datagrams of refused pairs) and by the router's decisions.
            .init(
                "tun.rejected",
                Int64(dispatcher.rejected.load(ordering: .relaxed) &+ router.rejected.load(ordering: .relaxed))),
            .init("tcp.flows", Int64(dispatcher.tcpFlows.load(ordering: .relaxed))),
            .init("tun.super.packets", Int64(dispatcher.superPackets.load(ordering: .relaxed))),
            .init("tcp.accepted", Int64(relay.accepted.load(ordering: .relaxed))),
            .init("tcp.failed", Int64(relay.failed.load(ordering: .relaxed))),
            .init("tcp.active", Int64(relay.active.load(ordering: .relaxed))),
            .init("tcp.bytes.up", Int64(relay.bytesUp.load(ordering: .relaxed))),
            .init("tcp.bytes.down", Int64(relay.bytesDown.load(ordering: .relaxed))),
            .init("tcp.nat.entries", Int64(nat.count)),
            .init("tcp.nat.live", Int64(nat.liveCount)),
            .init("tcp.limit.refused", Int64(dispatcher.refusedAtLimit.load(ordering: .relaxed))),
            .init("tcp.halfopen.evicted", Int64(dispatcher.halfOpenEvicted.load(ordering: .relaxed))),
            .init("udp.flows", Int64(udp.count)),
            .init("udp.datagrams.out", Int64(udp.datagramsOut.load(ordering: .relaxed))),
            .init("udp.datagrams.in", Int64(udp.datagramsIn.load(ordering: .relaxed))),
            .init("udp.dropped", Int64(udp.dropped.load(ordering: .relaxed))),
            .init("udp.limit.dropped", Int64(udp.droppedAtLimit.load(ordering: .relaxed))),
            .init("icmp.requests", Int64(icmp.requests.load(ordering: .relaxed))),
            .init("icmp.replies", Int64(icmp.replies.load(ordering: .relaxed))),
            .init("dns.hijacked", Int64(dns.queries.load(ordering: .relaxed))),
            .init("dns.answers", Int64(dns.answers.load(ordering: .relaxed))),
            .init("fakeip.lookups", Int64(dns.lookups.load(ordering: .relaxed))),
        ]
    }
}
