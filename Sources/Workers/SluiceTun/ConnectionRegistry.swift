import IPC
import SluiceConfig
import SluiceNet
import SluiceRouting
import SluiceSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One connection in the registry: its facts and its byte counters.
///
/// The counters are bumped by the one thread that moves the connection's bytes (the relay loop for TCP; the TUN
/// reader and the UDP loop for a UDP flow) with one relaxed atomic add per read or write batch, and read by a
/// snapshot on any thread.
final class TrackedConnection: Sendable {
    let id: String
    let facts: ConnectionFacts
    /// Wall-clock nanoseconds since 1970 at admission.
    let startedAt: UInt64
    /// Client → destination.
    let upload = Atomic<UInt64>(0)
    /// Destination → client.
    let download = Atomic<UInt64>(0)
    /// Hands the close to the thread that owns the connection's sockets.
    fileprivate let requestClose: @Sendable () -> Void

    fileprivate init(
        id: String, facts: ConnectionFacts, startedAt: UInt64, requestClose: @escaping @Sendable () -> Void
    ) {
        self.id = id
        self.facts = facts
        self.startedAt = startedAt
        self.requestClose = requestClose
    }
}

/// The tun worker's live TCP connections and UDP flows, for the external controller's `/connections` (mihomo's
/// shape, ``IPC/ConnectionsSnapshot``).
///
/// Owners register a connection when they admit it and remove it when it ends; the registry never touches a socket
/// itself: ``close(id:)`` calls the closure the owner registered, which queues the close on the owner's thread.
/// Ids look like version-4 UUIDs: a random per-registry prefix and a counter in the last group, so they are unique
/// for the worker's lifetime without a random draw per connection. Totals count every byte since the registry was
/// made, of connections still open and of those that ended.
final class ConnectionRegistry: Sendable {
    private struct State {
        var live: [String: TrackedConnection] = [:]
        /// Bytes of the connections that ended.
        var closedUpload: UInt64 = 0
        var closedDownload: UInt64 = 0
    }

    /// The first 20 hex digits of every id, formatted as `xxxxxxxx-xxxx-4xxx-8xxx-`.
    private let prefix: String
    private let counter = Atomic<UInt64>(0)
    private let state = Locked(State())

    init() {
        var random = SystemRandomNumberGenerator()
        let a = random.next() as UInt64
        let b = random.next() as UInt64
        prefix =
            Self.hex(a >> 32, digits: 8) + "-" + Self.hex(a >> 16, digits: 4) + "-4" + Self.hex(a, digits: 3) + "-8"
            + Self.hex(b, digits: 3) + "-"
    }

    /// Lists a connection; `requestClose` must end it on the thread that owns it (and that thread then calls
    /// ``remove(_:)``). Called from the owner's thread.
    func register(_ facts: ConnectionFacts, requestClose: @escaping @Sendable () -> Void) -> TrackedConnection {
        let n = counter.add(1, ordering: .relaxed).newValue
        let tracked = TrackedConnection(
            id: prefix + Self.hex(n, digits: 12), facts: facts, startedAt: WallClock.now(), requestClose: requestClose)
        state.withLock { $0.live[tracked.id] = tracked }
        return tracked
    }

    /// The connection ended: it leaves the list and its bytes go to the totals. Idempotent.
    func remove(_ tracked: TrackedConnection) {
        state.withLock { s in
            guard s.live.removeValue(forKey: tracked.id) != nil else { return }
            s.closedUpload &+= tracked.upload.load(ordering: .relaxed)
            s.closedDownload &+= tracked.download.load(ordering: .relaxed)
        }
    }

    var count: Int { state.withLock { $0.live.count } }

    /// Asks the owners to close connection `id`, or every connection when `id` is empty; returns how many were
    /// asked. The closes happen on the owners' threads, so a connection may still be listed for a moment.
    func close(id: String) -> Int {
        let chosen: [TrackedConnection] = state.withLock { s in
            if id.isEmpty { return Array(s.live.values) }
            return s.live[id].map { [$0] } ?? []
        }
        for tracked in chosen { tracked.requestClose() }
        return chosen.count
    }

    /// Bytes up and down since the data plane started, closed connections included (TCP and UDP): what `/traffic`
    /// samples every second. Reads the live counters without building the list.
    func totals() -> (upload: UInt64, download: UInt64) {
        state.withLock { s in
            var up = s.closedUpload
            var down = s.closedDownload
            for tracked in s.live.values {
                up &+= tracked.upload.load(ordering: .relaxed)
                down &+= tracked.download.load(ordering: .relaxed)
            }
            return (up, down)
        }
    }

    /// The `connections` document: every live connection, oldest first, and the totals.
    func snapshot() -> ConnectionsSnapshot {
        let (live, closedUp, closedDown) = state.withLock { s in
            (Array(s.live.values), s.closedUpload, s.closedDownload)
        }
        var uploadTotal = closedUp
        var downloadTotal = closedDown
        var connections: [ConnectionsSnapshot.Connection] = []
        connections.reserveCapacity(live.count)
        for tracked in live.sorted(by: { ($0.startedAt, $0.id) < ($1.startedAt, $1.id) }) {
            let up = tracked.upload.load(ordering: .relaxed)
            let down = tracked.download.load(ordering: .relaxed)
            uploadTotal &+= up
            downloadTotal &+= down
            connections.append(Self.entry(tracked, upload: up, download: down))
        }
        return ConnectionsSnapshot(uploadTotal: uploadTotal, downloadTotal: downloadTotal, connections: connections)
    }

    private static func entry(_ t: TrackedConnection, upload: UInt64, download: UInt64)
        -> ConnectionsSnapshot.Connection
    {
        let f = t.facts
        let processPath = f.route.processPath ?? ""
        let metadata = ConnectionsSnapshot.Metadata(
            network: f.network.rawValue, type: f.inbound?.type ?? "Tun", sourceIP: Self.text(f.source.address),
            destinationIP: Self.text(f.destination.address), sourcePort: String(f.source.port),
            destinationPort: String(f.destination.port), host: f.host ?? "", dnsMode: f.fake ? "fake-ip" : "normal",
            processPath: processPath, process: processPath.split(separator: "/").last.map(String.init) ?? "",
            sniffHost: f.sniffHost ?? "", remoteDestination: f.remoteDestination.map(Self.text) ?? "",
            inboundName: f.inbound?.name ?? "", inboundIP: f.inbound.map { Self.text($0.local.address) } ?? "",
            inboundPort: f.inbound.map { String($0.local.port) } ?? "", inboundUser: f.inbound?.user ?? "")
        return ConnectionsSnapshot.Connection(
            id: t.id, metadata: metadata, upload: upload, download: download, start: WallClock.rfc3339(t.startedAt),
            chains: f.route.chains, rule: f.route.condition?.clashType ?? "",
            rulePayload: f.route.condition?.clashPayload ?? "")
    }

    /// An address as mihomo prints it: `::ffff:1.2.3.4` as `1.2.3.4`.
    private static func text(_ address: IPAddress) -> String {
        if case .v6(let v6) = address, let v4 = v6.ipv4Mapped { return IPAddress.v4(v4).description }
        return address.description
    }

    /// The low `digits` hex digits of `value`, zero-padded.
    static func hex(_ value: UInt64, digits: Int) -> String {
        let text = String(value & (digits >= 16 ? UInt64.max : (1 << (4 * UInt64(digits))) - 1), radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
