import SluiceNet

/// Who is at an end of a channel.
public enum PeerRole: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case supervisor = 0
    case tunWorker = 1
    case dnsWorker = 2
    case keepalive = 3
    /// A command-line or API client on the control socket.
    case controlClient = 4

    public var description: String {
        switch self {
        case .supervisor: "supervisor"
        case .tunWorker: "tun"
        case .dnsWorker: "dns"
        case .keepalive: "keepalive"
        case .controlClient: "control"
        }
    }

    static func decode(_ r: inout WireReader, _ field: String) throws(IPCError) -> PeerRole {
        let raw = try r.u8(field)
        guard let role = PeerRole(rawValue: raw) else {
            throw IPCError(.malformedPayload, "\(field): unknown role \(raw)")
        }
        return role
    }
}

/// First frame on every channel, from the side that opened it (the supervisor, or a
/// control client): who I am and which protocol versions I speak.
public struct Hello: Sendable, Equatable {
    public var role: PeerRole
    public var minimumVersion: UInt8
    public var maximumVersion: UInt8
    public var pid: UInt32
    /// Free text for logs, e.g. `sluiced 0.1.0`.
    public var software: String

    public init(
        role: PeerRole, minimumVersion: UInt8 = FrameHeader.minimumVersion,
        maximumVersion: UInt8 = FrameHeader.currentVersion, pid: UInt32, software: String
    ) {
        self.role = role
        self.minimumVersion = minimumVersion
        self.maximumVersion = maximumVersion
        self.pid = pid
        self.software = software
    }

    /// The version both sides speak: the highest in the intersection of the ranges.
    public func negotiate(
        localMinimum: UInt8 = FrameHeader.minimumVersion, localMaximum: UInt8 = FrameHeader.currentVersion
    ) throws(IPCError) -> UInt8 {
        let low = max(minimumVersion, localMinimum)
        let high = min(maximumVersion, localMaximum)
        guard low <= high else {
            throw IPCError(
                .handshakeFailed,
                "peer \(role) (\(software)) speaks versions \(minimumVersion)...\(maximumVersion), "
                    + "this build \(localMinimum)...\(localMaximum); install matching sluice binaries")
        }
        return high
    }
}

/// The answer to ``Hello``: the version chosen, and who answered.
public struct HelloAccept: Sendable, Equatable {
    public var version: UInt8
    public var role: PeerRole
    public var pid: UInt32
    public var software: String

    public init(version: UInt8, role: PeerRole, pid: UInt32, software: String) {
        self.version = version
        self.role = role
        self.pid = pid
        self.software = software
    }
}

/// A failure answer to a request (header `reply` flag and its request id), or an
/// unsolicited report with request id 0.
public struct ErrorReport: Sendable, Equatable {
    public var code: IPCError.Code
    public var message: String

    public init(code: IPCError.Code, message: String) {
        self.code = code
        self.message = message
    }

    public init(_ error: IPCError) { self.init(code: error.code, message: error.detail) }
}

/// A worker's configuration, pushed by the supervisor at start and on reload.
public struct ConfigPush: Sendable, Equatable {
    /// How ``document`` is encoded.
    public enum Encoding: UInt8, Sendable {
        /// UTF-8 JSON of the validated configuration model (`SluiceConfiguration`).
        case json = 1
    }

    /// Increases by one with every accepted reload; echoed in ``ConfigResult`` and ``Ready``.
    public var generation: UInt64
    public var encoding: Encoding
    public var document: [UInt8]

    public init(generation: UInt64, encoding: Encoding = .json, document: [UInt8]) {
        self.generation = generation
        self.encoding = encoding
        self.document = document
    }
}

/// A worker's verdict on a ``ConfigPush``.
public struct ConfigResult: Sendable, Equatable {
    public enum Outcome: UInt8, Sendable {
        /// Applied in place.
        case applied = 0
        /// Valid, but the worker must be restarted to apply it (e.g. a new TUN name).
        case restartRequired = 1
        /// Refused; ``detail`` says why. The worker keeps its previous configuration.
        case rejected = 2
    }

    public var generation: UInt64
    public var outcome: Outcome
    public var detail: String

    public init(generation: UInt64, outcome: Outcome, detail: String = "") {
        self.generation = generation
        self.outcome = outcome
        self.detail = detail
    }
}

/// The worker is serving with configuration ``generation``.
public struct Ready: Sendable, Equatable {
    public var generation: UInt64
    /// One short line for STATUS= and logs, e.g. `sluice0 up, 3 rules`.
    public var detail: String

    public init(generation: UInt64, detail: String = "") {
        self.generation = generation
        self.detail = detail
    }
}

/// Liveness probe (supervisor → worker) and its echo (``heartbeatAck``).
public struct Heartbeat: Sendable, Equatable {
    public var sequence: UInt64
    /// Sender's monotonic clock in nanoseconds; echoed unchanged so the sender can measure
    /// the round trip without trusting the peer's clock.
    public var timestamp: UInt64

    public init(sequence: UInt64, timestamp: UInt64) {
        self.sequence = sequence
        self.timestamp = timestamp
    }
}

/// Counters from a worker, in answer to ``MessageType/statsRequest``.
public struct StatsReport: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        /// Dotted metric name, e.g. `tcp.connections.active`.
        public var name: String
        public var value: Int64

        public init(_ name: String, _ value: Int64) {
            self.name = name
            self.value = value
        }
    }

    public var entries: [Entry]
    /// What is wrong in the worker right now and breaks a promise sluice makes (e.g. "the fake-ip store cannot be
    /// written: …"), one line each; empty when all is well. Appended in protocol version 3; a version-2 report
    /// decodes with none.
    public var problems: [String]

    public init(entries: [Entry], problems: [String] = []) {
        self.entries = entries
        self.problems = problems
    }
}

/// Ask a worker to re-read what it loads itself (rule providers, the mapping file).
public struct Reload: Sendable, Equatable {
    public var reason: String
    public init(reason: String) { self.reason = reason }
}

/// Ask a worker to stop: finish in-flight work within ``grace`` and exit 0.
public struct Shutdown: Sendable, Equatable {
    public var graceMilliseconds: UInt32
    public var reason: String

    public init(graceMilliseconds: UInt32, reason: String) {
        self.graceMilliseconds = graceMilliseconds
        self.reason = reason
    }
}

/// Supervisor → worker: the frame carries exactly one descriptor, a connected socket to a
/// peer worker. Replaces any earlier channel to that peer (the peer restarted).
public struct PeerChannel: Sendable, Equatable {
    public var peer: PeerRole
    public var peerPID: UInt32

    public init(peer: PeerRole, peerPID: UInt32) {
        self.peer = peer
        self.peerPID = peerPID
    }
}

/// tun → dns: which name does this fake address stand for?
public struct FakeIPLookup: Sendable, Equatable {
    public var address: IPAddress
    public init(address: IPAddress) { self.address = address }
}

/// dns → tun: the answer to ``FakeIPLookup``; `name` is nil when the address is not mapped.
public struct FakeIPAnswer: Sendable, Equatable {
    public var address: IPAddress
    public var name: String?

    public init(address: IPAddress, name: String?) {
        self.address = address
        self.name = name
    }
}

/// dns → tun: a mapping was created or recycled; keeps the tun worker's mirror current.
public struct MappingEvent: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        case assigned = 0
        case released = 1
    }

    public var kind: Kind
    public var address: IPAddress
    public var name: String

    public init(kind: Kind, address: IPAddress, name: String) {
        self.kind = kind
        self.address = address
        self.name = name
    }
}

/// tun → dns: a live connection uses (or stopped using) a fake address, which must not be
/// recycled while pinned.
public struct FakeIPPin: Sendable, Equatable {
    public var address: IPAddress
    public var pinned: Bool

    public init(address: IPAddress, pinned: Bool) {
        self.address = address
        self.pinned = pinned
    }
}

/// control client → supervisor → tun worker: use `member` in the `select` group `group`
/// (`sluiced select`). Answered with `groupStatus`, or an error that says why not.
public struct Select: Sendable, Equatable {
    public var group: String
    public var member: String

    public init(group: String, member: String) {
        self.group = group
        self.member = member
    }
}

/// One proxy group as the `groupStatus` document lists it.
public struct GroupState: Sendable, Equatable, Codable {
    /// What the last health check found for a member.
    public struct Health: Sendable, Equatable, Codable {
        /// Milliseconds; nil when the check failed.
        public var latencyMilliseconds: UInt32?
        /// Seconds since the check.
        public var secondsAgo: Double

        public init(latencyMilliseconds: UInt32?, secondsAgo: Double) {
            self.latencyMilliseconds = latencyMilliseconds
            self.secondsAgo = secondsAgo
        }
    }

    public var name: String
    public var kind: String
    /// The member in use (for load-balance: "(per destination)").
    public var now: String
    public var members: [String]
    /// Why the group can carry nothing and rejects its traffic (then `now` is `REJECT`); nil while it works.
    public var unavailable: String?
    public var health: [String: Health]

    public init(
        name: String, kind: String, now: String, members: [String], unavailable: String? = nil,
        health: [String: Health]
    ) {
        self.name = name
        self.kind = kind
        self.now = now
        self.members = members
        self.unavailable = unavailable
        self.health = health
    }
}

/// tun → dns: the real addresses of `name`, for a DIRECT connection to a fake address
/// (the dns worker resolves it through its hosts, cache and upstreams, never the pool).
public struct ResolveRequest: Sendable, Equatable {
    public var name: String
    /// Ask for AAAA first (the client used IPv6).
    public var ipv6: Bool

    public init(name: String, ipv6: Bool) {
        self.name = name
        self.ipv6 = ipv6
    }
}

/// dns → tun: the answer to ``ResolveRequest``; no addresses and a non-empty `error` when
/// the name could not be resolved.
public struct ResolveAnswer: Sendable, Equatable {
    public var addresses: [IPAddress]
    public var error: String

    public init(addresses: [IPAddress], error: String = "") {
        self.addresses = addresses
        self.error = error
    }
}

/// tun worker → supervisor: the process that owns the socket with this inode (the uid,
/// from the same socket table, narrows the search). Answered with ``ProcessIdentity``.
public struct ProcessLookup: Sendable, Equatable {
    public var inode: UInt32
    public var uid: UInt32

    public init(inode: UInt32, uid: UInt32) {
        self.inode = inode
        self.uid = uid
    }
}

/// The answer to ``ProcessLookup``: pid 0 and an empty path when no process holds the socket
/// (any more). `path` is the executable (`/proc/PID/exe`); PROCESS-NAME tests its last part.
public struct ProcessIdentity: Sendable, Equatable {
    public var pid: UInt32
    public var path: String

    public init(pid: UInt32, path: String) {
        self.pid = pid
        self.path = path
    }
}

/// A DNS message carried between workers: hijacked queries (tun → dns) and their answers
/// (dns → tun, as a reply with the query's request id).
public struct DNSPacket: Sendable, Equatable {
    public enum Transport: UInt8, Sendable {
        case udp = 1
        case tcp = 2
    }

    /// The largest DNS message (RFC 1035 over TCP: 16-bit length).
    public static let maxMessageSize = 65535

    public var transport: Transport
    /// The querying client's address and port, as seen on the TUN.
    public var client: IPAddress
    public var clientPort: UInt16
    /// The address the client sent the query to (the hijacked destination).
    public var server: IPAddress
    public var serverPort: UInt16
    /// The DNS message, without the TCP length prefix.
    public var message: [UInt8]

    public init(
        transport: Transport, client: IPAddress, clientPort: UInt16, server: IPAddress, serverPort: UInt16,
        message: [UInt8]
    ) {
        self.transport = transport
        self.client = client
        self.clientPort = clientPort
        self.server = server
        self.serverPort = serverPort
        self.message = message
    }
}

/// One WireGuard link as the `linkStatus` document lists it (keepalive worker → supervisor, `sluiced status`).
public struct WireGuardLinkState: Sendable, Equatable, Codable {
    /// One peer of the link.
    public struct Peer: Sendable, Equatable, Codable {
        /// The peer's public key, base64 as in wg configs.
        public var publicKey: String
        /// The configured endpoint (`host:port`, a name or an address); nil when the peer has none (it calls us).
        public var configuredEndpoint: String?
        /// The endpoint the device uses now (`1.2.3.4:51820`, `[fd00::1]:51820`); nil when it has none.
        public var endpoint: String?
        /// Seconds since the last handshake; nil when there has been none.
        public var handshakeAgeSeconds: Int64?
        public var rxBytes: UInt64
        public var txBytes: UInt64
        /// `ok` (handshake at most 135 s old), `stale` (older) or `never`.
        public var state: String
        /// Times the endpoint name was re-resolved to a new address by this worker.
        public var endpointChanges: Int

        public init(
            publicKey: String, configuredEndpoint: String?, endpoint: String?, handshakeAgeSeconds: Int64?,
            rxBytes: UInt64,
            txBytes: UInt64, state: String, endpointChanges: Int
        ) {
            self.publicKey = publicKey
            self.configuredEndpoint = configuredEndpoint
            self.endpoint = endpoint
            self.handshakeAgeSeconds = handshakeAgeSeconds
            self.rxBytes = rxBytes
            self.txBytes = txBytes
            self.state = state
            self.endpointChanges = endpointChanges
        }
    }

    public var name: String
    /// The device runs and its configuration is applied.
    public var up: Bool
    /// `wireguard-go` or `kernel`.
    public var backend: String
    /// The wireguard-go process; nil for the kernel backend or while it is being restarted.
    public var pid: Int32?
    /// wireguard-go restarts (and link recreations) by this worker.
    public var restarts: Int
    /// The worker adopted a device it found running.
    public var adopted: Bool
    public var listenPort: UInt16?
    public var peers: [Peer]

    public init(
        name: String, up: Bool, backend: String, pid: Int32?, restarts: Int, adopted: Bool, listenPort: UInt16?,
        peers: [Peer]
    ) {
        self.name = name
        self.up = up
        self.backend = backend
        self.pid = pid
        self.restarts = restarts
        self.adopted = adopted
        self.listenPort = listenPort
        self.peers = peers
    }
}

/// supervisor → tun worker: close the connection `id` (as the `connections` document names it), or every
/// connection when `id` is empty. Answered with `connectionsClosed`.
public struct CloseConnections: Sendable, Equatable {
    public var id: String

    public init(id: String) { self.id = id }
}

/// supervisor → tun worker: open `url` through the proxy `name` and time it (mihomo's
/// `/proxies/:name/delay`); with `wholeGroup`, `name` is a group and every member is measured at once
/// (`/group/:name/delay`). Answered with `delayResult`.
public struct DelayTest: Sendable, Equatable {
    public var name: String
    public var url: String
    public var timeoutMilliseconds: UInt32
    public var wholeGroup: Bool

    public init(name: String, url: String, timeoutMilliseconds: UInt32, wholeGroup: Bool) {
        self.name = name
        self.url = url
        self.timeoutMilliseconds = timeoutMilliseconds
        self.wholeGroup = wholeGroup
    }
}

/// The answer to `delayTest`: one entry per proxy measured, 0 ms meaning it failed or timed out; `error`
/// non-empty (and no entries) when nothing could be measured (unknown name, not a group).
public struct DelayResult: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var milliseconds: UInt32

        public init(name: String, milliseconds: UInt32) {
            self.name = name
            self.milliseconds = milliseconds
        }
    }

    public var delays: [Entry]
    public var error: String

    public init(delays: [Entry], error: String = "") {
        self.delays = delays
        self.error = error
    }
}

/// supervisor → worker: from now on send every log line at `priority` or more urgent (syslog numbers:
/// 3 error ... 7 debug) as a `logRecord`; ``LogSubscribe/off`` stops them.
public struct LogSubscribe: Sendable, Equatable {
    public static let off: UInt8 = 0xFF
    public var priority: UInt8

    public init(priority: UInt8) { self.priority = priority }
}

/// worker → supervisor: one log line (without the worker's name; the channel says who).
public struct LogRecord: Sendable, Equatable {
    public var priority: UInt8
    public var text: String

    public init(priority: UInt8, text: String) {
        self.priority = priority
        self.text = text
    }
}

/// supervisor → dns worker (version 3): empty one of its caches, for the external controller's
/// `POST /cache/fakeip/flush` and `POST /cache/dns/flush`. Answered with `cacheFlushed`, or an `error` when the
/// cache could not be emptied (the fake-IP store could not be rewritten).
public struct CacheFlush: Sendable, Equatable {
    /// Which cache (`u8 what` on the wire).
    public enum Target: UInt8, Sendable {
        /// Every fake-IP mapping, in memory and in the store file (`profile.store-fake-ip`).
        case fakeIP = 1
        /// The answers cached from the upstreams.
        case dnsAnswers = 2
    }

    public var target: Target

    public init(target: Target) { self.target = target }
}

/// The `connections` document (UTF-8 JSON): the tun worker's live connections, in the shape of mihomo's
/// `GET /connections` so that the external controller passes it through.
public struct ConnectionsSnapshot: Sendable, Equatable, Codable {
    public struct Metadata: Sendable, Equatable, Codable {
        /// `tcp` or `udp`.
        public var network: String
        /// How it reached sluice: `Tun`, or a local proxy port's protocol (`Socks5`, `Socks4`, `HTTP`, `HTTPS` for a CONNECT, as mihomo names them).
        public var type: String
        public var sourceIP: String
        public var destinationIP: String
        public var sourcePort: String
        public var destinationPort: String
        /// The domain the connection is for (fake-IP mapping or sniffed), empty when only the address is known.
        public var host: String
        /// `fake-ip` or `normal`.
        public var dnsMode: String
        public var processPath: String
        public var process: String
        public var sniffHost: String
        public var remoteDestination: String
        /// The local proxy port it came in on (mihomo's `DEFAULT-MIXED`, or a listener's name), its address and port,
        /// and the user that authenticated there; empty for TUN connections.
        public var inboundName: String
        public var inboundIP: String
        public var inboundPort: String
        public var inboundUser: String

        public init(
            network: String, type: String = "Tun", sourceIP: String, destinationIP: String, sourcePort: String,
            destinationPort: String, host: String, dnsMode: String, processPath: String = "", process: String = "",
            sniffHost: String = "", remoteDestination: String = "", inboundName: String = "", inboundIP: String = "",
            inboundPort: String = "", inboundUser: String = ""
        ) {
            self.inboundName = inboundName
            self.inboundIP = inboundIP
            self.inboundPort = inboundPort
            self.inboundUser = inboundUser
            self.network = network
            self.type = type
            self.sourceIP = sourceIP
            self.destinationIP = destinationIP
            self.sourcePort = sourcePort
            self.destinationPort = destinationPort
            self.host = host
            self.dnsMode = dnsMode
            self.processPath = processPath
            self.process = process
            self.sniffHost = sniffHost
            self.remoteDestination = remoteDestination
        }
    }

    public struct Connection: Sendable, Equatable, Codable {
        public var id: String
        public var metadata: Metadata
        /// Bytes from the client to the destination, and back.
        public var upload: UInt64
        public var download: UInt64
        /// RFC 3339 with fractional seconds, UTC.
        public var start: String
        /// The outbound first, then each group that led to it (mihomo's order: `["ss1", "Proxy"]`).
        public var chains: [String]
        /// The rule that matched (`DomainSuffix`, `Match`, ...) and its payload.
        public var rule: String
        public var rulePayload: String

        public init(
            id: String, metadata: Metadata, upload: UInt64, download: UInt64, start: String, chains: [String],
            rule: String,
            rulePayload: String
        ) {
            self.id = id
            self.metadata = metadata
            self.upload = upload
            self.download = download
            self.start = start
            self.chains = chains
            self.rule = rule
            self.rulePayload = rulePayload
        }
    }

    /// Since the worker started, including closed connections.
    public var uploadTotal: UInt64
    public var downloadTotal: UInt64
    public var connections: [Connection]

    public init(uploadTotal: UInt64, downloadTotal: UInt64, connections: [Connection]) {
        self.uploadTotal = uploadTotal
        self.downloadTotal = downloadTotal
        self.connections = connections
    }
}
