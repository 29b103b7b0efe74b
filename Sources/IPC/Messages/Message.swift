import SluiceNet

/// Every message of protocol version 1, with its payload.
///
/// The byte layout of each payload is specified in docs/ipc.md and pinned by golden vectors
/// in Tests/IPCTests. Decoding is total: any byte string yields a message or a typed
/// ``IPCError``, never a trap.
public enum Message: Sendable, Equatable {
    case hello(Hello)
    case helloAccept(HelloAccept)
    case error(ErrorReport)
    case configPush(ConfigPush)
    case configResult(ConfigResult)
    case ready(Ready)
    case heartbeat(Heartbeat)
    case heartbeatAck(Heartbeat)
    case statsRequest
    case statsReport(StatsReport)
    /// control client → supervisor: the suite's state, answered with ``statusReport``.
    case statusRequest
    /// supervisor → control client: UTF-8 JSON of the supervisor's status document.
    case statusReport(document: [UInt8])
    /// supervisor → tun worker (and control client → supervisor): the proxy groups' state.
    case groupStatusRequest
    /// The reply: `document` is UTF-8 JSON, a list of ``GroupState``.
    case groupStatus(document: [UInt8])
    /// supervisor → keepalive worker: the WireGuard links' state.
    case linkStatusRequest
    /// The reply: `document` is UTF-8 JSON, a list of ``WireGuardLinkState``.
    case linkStatus(document: [UInt8])
    case select(Select)
    case reload(Reload)
    case shutdown(Shutdown)
    case peerChannel(PeerChannel)
    /// worker (keepalive, tun) → supervisor: open `/dev/net/tun` for me (the service user may not), answered with
    /// ``tunDescriptor`` or an `error` naming why sluiced could not.
    case tunDescriptorRequest
    /// The reply: the frame carries exactly one descriptor, `/dev/net/tun` opened O_RDWR|O_CLOEXEC and not yet
    /// attached to any device (the worker attaches it with TUNSETIFF).
    case tunDescriptor
    case fakeIPLookup(FakeIPLookup)
    case fakeIPAnswer(FakeIPAnswer)
    case mappingEvent(MappingEvent)
    case fakeIPPin(FakeIPPin)
    case resolveRequest(ResolveRequest)
    case resolveAnswer(ResolveAnswer)
    case dnsPacket(DNSPacket)
    /// tun worker → supervisor: which process owns socket `inode` (PROCESS-NAME rules).
    case processLookup(ProcessLookup)
    case processInfo(ProcessIdentity)
    /// supervisor → tun worker: the live connections (external controller, `sluiced status`).
    case connectionsRequest
    /// The reply: `document` is UTF-8 JSON, a ``ConnectionsSnapshot``.
    case connections(document: [UInt8])
    /// supervisor → tun worker: close one connection by id, or every one (empty id).
    case closeConnections(CloseConnections)
    /// The reply: how many were closed.
    case connectionsClosed(count: UInt32)
    /// supervisor → tun worker: measure a proxy's (or every member of a group's) delay.
    case delayTest(DelayTest)
    /// The reply.
    case delayResult(DelayResult)
    /// supervisor → worker (notification): send ``logRecord``s at or above a priority.
    case logSubscribe(LogSubscribe)
    /// worker → supervisor (notification): one log line, for `/logs` subscribers.
    case logRecord(LogRecord)
    /// supervisor → dns worker: empty the fake-IP pool and its store, or the answer cache (version 3).
    case cacheFlush(CacheFlush)
    /// The reply: how many entries were removed.
    case cacheFlushed(entries: UInt64)

    public var type: MessageType {
        switch self {
        case .hello: .hello
        case .helloAccept: .helloAccept
        case .error: .error
        case .configPush: .configPush
        case .configResult: .configResult
        case .ready: .ready
        case .heartbeat: .heartbeat
        case .heartbeatAck: .heartbeatAck
        case .statsRequest: .statsRequest
        case .statsReport: .statsReport
        case .statusRequest: .statusRequest
        case .statusReport: .statusReport
        case .groupStatusRequest: .groupStatusRequest
        case .groupStatus: .groupStatus
        case .linkStatusRequest: .linkStatusRequest
        case .linkStatus: .linkStatus
        case .select: .select
        case .reload: .reload
        case .shutdown: .shutdown
        case .peerChannel: .peerChannel
        case .tunDescriptorRequest: .tunDescriptorRequest
        case .tunDescriptor: .tunDescriptor
        case .fakeIPLookup: .fakeIPLookup
        case .fakeIPAnswer: .fakeIPAnswer
        case .mappingEvent: .mappingEvent
        case .fakeIPPin: .fakeIPPin
        case .resolveRequest: .resolveRequest
        case .resolveAnswer: .resolveAnswer
        case .dnsPacket: .dnsPacket
        case .processLookup: .processLookup
        case .processInfo: .processInfo
        case .connectionsRequest: .connectionsRequest
        case .connections: .connections
        case .closeConnections: .closeConnections
        case .connectionsClosed: .connectionsClosed
        case .delayTest: .delayTest
        case .delayResult: .delayResult
        case .logSubscribe: .logSubscribe
        case .logRecord: .logRecord
        case .cacheFlush: .cacheFlush
        case .cacheFlushed: .cacheFlushed
        }
    }

    /// How many descriptors a frame of this type must carry, when the protocol fixes it.
    public var requiredDescriptorCount: Int {
        switch self {
        case .peerChannel, .tunDescriptor: 1
        default: 0
        }
    }

    // MARK: Encoding

    public func encodedPayload() -> [UInt8] {
        var w = WireWriter()
        switch self {
        case .hello(let m):
            w.u8(m.role.rawValue)
            w.u8(m.minimumVersion)
            w.u8(m.maximumVersion)
            w.u32(m.pid)
            w.string(m.software)
        case .helloAccept(let m):
            w.u8(m.version)
            w.u8(m.role.rawValue)
            w.u32(m.pid)
            w.string(m.software)
        case .error(let m):
            w.u16(m.code.wireValue)
            w.string(m.message)
        case .configPush(let m):
            w.u64(m.generation)
            w.u8(m.encoding.rawValue)
            w.blob(m.document)
        case .configResult(let m):
            w.u64(m.generation)
            w.u8(m.outcome.rawValue)
            w.string(m.detail)
        case .ready(let m):
            w.u64(m.generation)
            w.string(m.detail)
        case .heartbeat(let m), .heartbeatAck(let m):
            w.u64(m.sequence)
            w.u64(m.timestamp)
        case .statsRequest:
            break
        case .statsReport(let m):
            w.u32(UInt32(m.entries.count))
            for entry in m.entries {
                w.string(entry.name)
                w.i64(entry.value)
            }
            w.u32(UInt32(m.problems.count))
            for problem in m.problems { w.string(problem) }
        case .statusRequest:
            break
        case .statusReport(let document):
            w.blob(document)
        case .groupStatusRequest:
            break
        case .groupStatus(let document):
            w.blob(document)
        case .linkStatusRequest:
            break
        case .linkStatus(let document):
            w.blob(document)
        case .select(let m):
            w.string(m.group)
            w.string(m.member)
        case .reload(let m):
            w.string(m.reason)
        case .shutdown(let m):
            w.u32(m.graceMilliseconds)
            w.string(m.reason)
        case .peerChannel(let m):
            w.u8(m.peer.rawValue)
            w.u32(m.peerPID)
        case .tunDescriptorRequest, .tunDescriptor:
            break
        case .fakeIPLookup(let m):
            w.address(m.address)
        case .fakeIPAnswer(let m):
            w.address(m.address)
            w.optionalString(m.name)
        case .mappingEvent(let m):
            w.u8(m.kind.rawValue)
            w.address(m.address)
            w.string(m.name)
        case .fakeIPPin(let m):
            w.address(m.address)
            w.bool(m.pinned)
        case .resolveRequest(let m):
            w.string(m.name)
            w.bool(m.ipv6)
        case .resolveAnswer(let m):
            w.u32(UInt32(m.addresses.count))
            for address in m.addresses { w.address(address) }
            w.string(m.error)
        case .dnsPacket(let m):
            w.u8(m.transport.rawValue)
            w.address(m.client)
            w.u16(m.clientPort)
            w.address(m.server)
            w.u16(m.serverPort)
            w.blob(m.message)
        case .processLookup(let m):
            w.u32(m.inode)
            w.u32(m.uid)
        case .processInfo(let m):
            w.u32(m.pid)
            w.string(m.path)
        case .connectionsRequest:
            break
        case .connections(let document):
            w.blob(document)
        case .closeConnections(let m):
            w.string(m.id)
        case .connectionsClosed(let count):
            w.u32(count)
        case .delayTest(let m):
            w.string(m.name)
            w.string(m.url)
            w.u32(m.timeoutMilliseconds)
            w.bool(m.wholeGroup)
        case .delayResult(let m):
            w.u32(UInt32(m.delays.count))
            for entry in m.delays {
                w.string(entry.name)
                w.u32(entry.milliseconds)
            }
            w.string(m.error)
        case .logSubscribe(let m):
            w.u8(m.priority)
        case .logRecord(let m):
            w.u8(m.priority)
            w.string(m.text)
        case .cacheFlush(let m):
            w.u8(m.target.rawValue)
        case .cacheFlushed(let entries):
            w.u64(entries)
        }
        return w.bytes
    }

    // MARK: Decoding

    /// Interprets `payload` as a message of `type`.
    /// - Throws: `.unknownMessageType` for a type this build does not know,
    ///   `.truncated` / `.malformedPayload` naming the field otherwise.
    public static func decode(type: MessageType, payload: [UInt8]) throws(IPCError) -> Message {
        guard let name = type.name else {
            throw IPCError(.unknownMessageType, "\(type) with \(payload.count) payload bytes")
        }
        var r = WireReader(payload, context: name)
        switch type {
        case .hello:
            return .hello(
                Hello(
                    role: try PeerRole.decode(&r, "role"), minimumVersion: try r.u8("minimumVersion"),
                    maximumVersion: try r.u8("maximumVersion"), pid: try r.u32("pid"),
                    software: try r.string("software", max: 256)))
        case .helloAccept:
            return .helloAccept(
                HelloAccept(
                    version: try r.u8("version"), role: try PeerRole.decode(&r, "role"), pid: try r.u32("pid"),
                    software: try r.string("software", max: 256)))
        case .error:
            return .error(
                ErrorReport(code: IPCError.Code(wireValue: try r.u16("code")), message: try r.string("message")))
        case .configPush:
            let generation = try r.u64("generation")
            let rawEncoding = try r.u8("encoding")
            guard let encoding = ConfigPush.Encoding(rawValue: rawEncoding) else {
                throw IPCError(.malformedPayload, "configPush.encoding: unknown encoding \(rawEncoding)")
            }
            return .configPush(ConfigPush(generation: generation, encoding: encoding, document: try r.blob("document")))
        case .configResult:
            let generation = try r.u64("generation")
            let rawOutcome = try r.u8("outcome")
            guard let outcome = ConfigResult.Outcome(rawValue: rawOutcome) else {
                throw IPCError(.malformedPayload, "configResult.outcome: unknown outcome \(rawOutcome)")
            }
            return .configResult(ConfigResult(generation: generation, outcome: outcome, detail: try r.string("detail")))
        case .ready:
            return .ready(Ready(generation: try r.u64("generation"), detail: try r.string("detail")))
        case .heartbeat:
            return .heartbeat(Heartbeat(sequence: try r.u64("sequence"), timestamp: try r.u64("timestamp")))
        case .heartbeatAck:
            return .heartbeatAck(Heartbeat(sequence: try r.u64("sequence"), timestamp: try r.u64("timestamp")))
        case .statsRequest:
            return .statsRequest
        case .statsReport:
            // Each entry is at least a 4-byte length and an 8-byte value.
            let count = try r.count("entries", minimumElementSize: 12)
            var entries: [StatsReport.Entry] = []
            entries.reserveCapacity(count)
            for i in 0..<count {
                entries.append(.init(try r.string("entries[\(i)].name", max: 256), try r.i64("entries[\(i)].value")))
            }
            var problems: [String] = []
            if r.remaining > 0 {  // version 3 on
                let count = try r.count("problems", minimumElementSize: 4)
                for i in 0..<count { problems.append(try r.string("problems[\(i)]", max: 1024)) }
            }
            return .statsReport(StatsReport(entries: entries, problems: problems))
        case .statusRequest:
            return .statusRequest
        case .statusReport:
            return .statusReport(document: try r.blob("document"))
        case .groupStatusRequest:
            return .groupStatusRequest
        case .groupStatus:
            return .groupStatus(document: try r.blob("document"))
        case .linkStatusRequest:
            return .linkStatusRequest
        case .linkStatus:
            return .linkStatus(document: try r.blob("document"))
        case .select:
            return .select(Select(group: try r.string("group", max: 1024), member: try r.string("member", max: 1024)))
        case .reload:
            return .reload(Reload(reason: try r.string("reason")))
        case .shutdown:
            return .shutdown(
                Shutdown(graceMilliseconds: try r.u32("graceMilliseconds"), reason: try r.string("reason")))
        case .peerChannel:
            return .peerChannel(PeerChannel(peer: try PeerRole.decode(&r, "peer"), peerPID: try r.u32("peerPID")))
        case .tunDescriptorRequest:
            return .tunDescriptorRequest
        case .tunDescriptor:
            return .tunDescriptor
        case .fakeIPLookup:
            return .fakeIPLookup(FakeIPLookup(address: try r.address("address")))
        case .fakeIPAnswer:
            return .fakeIPAnswer(
                FakeIPAnswer(address: try r.address("address"), name: try r.optionalString("name", max: 255)))
        case .mappingEvent:
            let rawKind = try r.u8("kind")
            guard let kind = MappingEvent.Kind(rawValue: rawKind) else {
                throw IPCError(.malformedPayload, "mappingEvent.kind: unknown kind \(rawKind)")
            }
            return .mappingEvent(
                MappingEvent(kind: kind, address: try r.address("address"), name: try r.string("name", max: 255)))
        case .fakeIPPin:
            return .fakeIPPin(FakeIPPin(address: try r.address("address"), pinned: try r.bool("pinned")))
        case .resolveRequest:
            return .resolveRequest(ResolveRequest(name: try r.string("name", max: 255), ipv6: try r.bool("ipv6")))
        case .resolveAnswer:
            // Each address is at least a family byte and 4 bytes.
            let count = try r.count("addresses", minimumElementSize: 5)
            var addresses: [IPAddress] = []
            addresses.reserveCapacity(count)
            for i in 0..<count { addresses.append(try r.address("addresses[\(i)]")) }
            return .resolveAnswer(ResolveAnswer(addresses: addresses, error: try r.string("error", max: 1024)))
        case .dnsPacket:
            let rawTransport = try r.u8("transport")
            guard let transport = DNSPacket.Transport(rawValue: rawTransport) else {
                throw IPCError(.malformedPayload, "dnsPacket.transport: unknown transport \(rawTransport)")
            }
            return .dnsPacket(
                DNSPacket(
                    transport: transport, client: try r.address("client"), clientPort: try r.u16("clientPort"),
                    server: try r.address("server"), serverPort: try r.u16("serverPort"),
                    message: try r.blob("message", max: DNSPacket.maxMessageSize)))
        case .processLookup:
            return .processLookup(ProcessLookup(inode: try r.u32("inode"), uid: try r.u32("uid")))
        case .processInfo:
            return .processInfo(ProcessIdentity(pid: try r.u32("pid"), path: try r.string("path", max: 4096)))
        case .connectionsRequest:
            return .connectionsRequest
        case .connections:
            return .connections(document: try r.blob("document"))
        case .closeConnections:
            return .closeConnections(CloseConnections(id: try r.string("id", max: 64)))
        case .connectionsClosed:
            return .connectionsClosed(count: try r.u32("count"))
        case .delayTest:
            return .delayTest(
                DelayTest(
                    name: try r.string("name", max: 1024), url: try r.string("url", max: 4096),
                    timeoutMilliseconds: try r.u32("timeoutMilliseconds"), wholeGroup: try r.bool("wholeGroup")))
        case .delayResult:
            // Each entry is at least a 4-byte length and a 4-byte delay.
            let count = try r.count("delays", minimumElementSize: 8)
            var delays: [DelayResult.Entry] = []
            delays.reserveCapacity(count)
            for i in 0..<count {
                delays.append(
                    .init(
                        name: try r.string("delays[\(i)].name", max: 1024),
                        milliseconds: try r.u32("delays[\(i)].milliseconds")))
            }
            return .delayResult(DelayResult(delays: delays, error: try r.string("error", max: 4096)))
        case .logSubscribe:
            return .logSubscribe(LogSubscribe(priority: try r.u8("priority")))
        case .logRecord:
            return .logRecord(LogRecord(priority: try r.u8("priority"), text: try r.string("text", max: 65536)))
        case .cacheFlush:
            let raw = try r.u8("what")
            guard let target = CacheFlush.Target(rawValue: raw) else {
                throw IPCError(
                    .malformedPayload, "cacheFlush.what: unknown cache \(raw) (1 fake-IP pool and store, 2 DNS answers)"
                )
            }
            return .cacheFlush(CacheFlush(target: target))
        case .cacheFlushed:
            return .cacheFlushed(entries: try r.u64("entries"))
        default:
            throw IPCError(.unknownMessageType, "\(type)")
        }
    }
}

// MARK: - Addresses on the wire: u8 family (4 or 6), then 4 or 16 bytes, network order.

extension WireWriter {
    public mutating func address(_ address: IPAddress) {
        switch address {
        case .v4(let a):
            u8(4)
            u32(a.rawValue)
        case .v6(let a):
            u8(6)
            u64(a.high)
            u64(a.low)
        }
    }
}

extension WireReader {
    public mutating func address(_ field: String) throws(IPCError) -> IPAddress {
        switch try u8("\(field).family") {
        case 4: return .v4(IPv4Address(rawValue: try u32(field)))
        case 6: return .v6(IPv6Address(high: try u64(field), low: try u64(field)))
        case let other: throw IPCError(.malformedPayload, "\(field).family: expected 4 or 6, got \(other)")
        }
    }
}
