import IPC
import SluiceNet

/// One of each message with fixed field values: the source of the golden vectors and of the
/// round-trip and mutation tests.
enum SampleMessages {
    static let v4 = IPAddress.v4(IPv4Address(198, 18, 0, 7))
    static let v6 = IPAddress.v6(IPv6Address(high: 0xfdfe_dcba_9876_0000, low: 0x0000_0000_0000_0001))

    /// (name, message, request id, reply flag)
    static let all: [(String, Message, UInt32, Bool)] = [
        (
            "hello",
            .hello(Hello(role: .tunWorker, minimumVersion: 1, maximumVersion: 1, pid: 4242, software: "sluiced 0.1.0")),
            1, false
        ),
        ("helloAccept", .helloAccept(HelloAccept(version: 1, role: .dnsWorker, pid: 77, software: "dns")), 1, true),
        ("error", .error(ErrorReport(code: .unknownMessageType, message: "type 0x0fff")), 9, true),
        ("configPush", .configPush(ConfigPush(generation: 3, document: Array("{}".utf8))), 2, false),
        (
            "configResult", .configResult(ConfigResult(generation: 3, outcome: .restartRequired, detail: "tun.device")),
            2, true
        ),
        ("ready", .ready(Ready(generation: 3, detail: "up")), 0, false),
        ("heartbeat", .heartbeat(Heartbeat(sequence: 5, timestamp: 0x0102_0304_0506_0708)), 5, false),
        ("heartbeatAck", .heartbeatAck(Heartbeat(sequence: 5, timestamp: 0x0102_0304_0506_0708)), 5, true),
        ("statsRequest", .statsRequest, 6, false),
        ("statsReport", .statsReport(StatsReport(entries: [.init("a", 1), .init("b", -1)], problems: ["x"])), 6, true),
        ("statusRequest", .statusRequest, 11, false),
        ("statusReport", .statusReport(document: Array("{}".utf8)), 11, true),
        ("groupStatusRequest", .groupStatusRequest, 13, false),
        ("groupStatus", .groupStatus(document: Array("[]".utf8)), 13, true),
        ("linkStatusRequest", .linkStatusRequest, 16, false),
        ("linkStatus", .linkStatus(document: Array("[]".utf8)), 16, true),
        ("select", .select(Select(group: "G", member: "p")), 14, false),
        ("reload", .reload(Reload(reason: "HUP")), 0, false),
        ("shutdown", .shutdown(Shutdown(graceMilliseconds: 5000, reason: "stop")), 0, false),
        ("peerChannel", .peerChannel(PeerChannel(peer: .dnsWorker, peerPID: 4243)), 0, false),
        ("tunDescriptorRequest", .tunDescriptorRequest, 20, false),
        ("tunDescriptor", .tunDescriptor, 20, true),
        ("fakeIPLookup", .fakeIPLookup(FakeIPLookup(address: v4)), 7, false),
        ("fakeIPAnswer", .fakeIPAnswer(FakeIPAnswer(address: v4, name: "a.test")), 7, true),
        ("fakeIPAnswer-none", .fakeIPAnswer(FakeIPAnswer(address: v6, name: nil)), 8, true),
        ("mappingEvent", .mappingEvent(MappingEvent(kind: .assigned, address: v4, name: "a.test")), 0, false),
        ("fakeIPPin", .fakeIPPin(FakeIPPin(address: v4, pinned: true)), 0, false),
        ("resolveRequest", .resolveRequest(ResolveRequest(name: "a.test", ipv6: false)), 12, false),
        ("resolveAnswer", .resolveAnswer(ResolveAnswer(addresses: [v4, v6], error: "")), 12, true),
        ("processLookup", .processLookup(ProcessLookup(inode: 4242, uid: 1000)), 15, false),
        ("processInfo", .processInfo(ProcessIdentity(pid: 77, path: "/usr/bin/curl")), 15, true),
        ("connectionsRequest", .connectionsRequest, 17, false),
        ("connections", .connections(document: Array("{}".utf8)), 17, true),
        ("closeConnections", .closeConnections(CloseConnections(id: "7")), 18, false),
        ("connectionsClosed", .connectionsClosed(count: 1), 18, true),
        (
            "delayTest", .delayTest(DelayTest(name: "p", url: "u", timeoutMilliseconds: 5000, wholeGroup: true)), 19,
            false
        ),
        ("delayResult", .delayResult(DelayResult(delays: [.init(name: "p", milliseconds: 42)], error: "")), 19, true),
        ("logSubscribe", .logSubscribe(LogSubscribe(priority: 6)), 0, false),
        ("logRecord", .logRecord(LogRecord(priority: 3, text: "x")), 0, false),
        ("cacheFlush", .cacheFlush(CacheFlush(target: .fakeIP)), 20, false),
        ("cacheFlushed", .cacheFlushed(entries: 3), 20, true),
        (
            "dnsPacket",
            .dnsPacket(
                DNSPacket(
                    transport: .udp, client: v4, clientPort: 5353, server: v6, serverPort: 53, message: [0xab, 0xcd])),
            10, false
        ),
    ]
}
