/// The 16-bit message type in a frame header.
///
/// A struct rather than an enum so that a type this build does not know still decodes as a
/// header (and gets an `unknownMessageType` error reply) instead of failing the stream.
/// Ranges: 0x00xx session, 0x001x configuration, 0x002x liveness, 0x003x stats,
/// 0x004x control, 0x005x wiring (descriptors sluiced hands over; 0x0056-0x0057 version 3), 0x006x fake-IP,
/// 0x007x DNS carriage, 0x008x process lookup, 0x009x the external controller's requests (protocol version 2;
/// 0x0098-0x0099 version 3).
public struct MessageType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let hello = MessageType(rawValue: 0x0001)
    public static let helloAccept = MessageType(rawValue: 0x0002)
    public static let error = MessageType(rawValue: 0x0003)
    public static let configPush = MessageType(rawValue: 0x0010)
    public static let configResult = MessageType(rawValue: 0x0011)
    public static let ready = MessageType(rawValue: 0x0012)
    public static let heartbeat = MessageType(rawValue: 0x0020)
    public static let heartbeatAck = MessageType(rawValue: 0x0021)
    public static let statsRequest = MessageType(rawValue: 0x0030)
    public static let statsReport = MessageType(rawValue: 0x0031)
    public static let statusRequest = MessageType(rawValue: 0x0032)
    public static let statusReport = MessageType(rawValue: 0x0033)
    public static let groupStatusRequest = MessageType(rawValue: 0x0034)
    public static let groupStatus = MessageType(rawValue: 0x0035)
    public static let linkStatusRequest = MessageType(rawValue: 0x0036)
    public static let linkStatus = MessageType(rawValue: 0x0037)
    public static let reload = MessageType(rawValue: 0x0040)
    public static let shutdown = MessageType(rawValue: 0x0041)
    public static let select = MessageType(rawValue: 0x0042)
    public static let peerChannel = MessageType(rawValue: 0x0050)
    public static let tunDescriptorRequest = MessageType(rawValue: 0x0056)
    public static let tunDescriptor = MessageType(rawValue: 0x0057)
    public static let fakeIPLookup = MessageType(rawValue: 0x0060)
    public static let fakeIPAnswer = MessageType(rawValue: 0x0061)
    public static let mappingEvent = MessageType(rawValue: 0x0062)
    public static let fakeIPPin = MessageType(rawValue: 0x0063)
    public static let resolveRequest = MessageType(rawValue: 0x0064)
    public static let resolveAnswer = MessageType(rawValue: 0x0065)
    public static let dnsPacket = MessageType(rawValue: 0x0070)
    public static let processLookup = MessageType(rawValue: 0x0080)
    public static let processInfo = MessageType(rawValue: 0x0081)
    public static let connectionsRequest = MessageType(rawValue: 0x0090)
    public static let connections = MessageType(rawValue: 0x0091)
    public static let closeConnections = MessageType(rawValue: 0x0092)
    public static let connectionsClosed = MessageType(rawValue: 0x0093)
    public static let delayTest = MessageType(rawValue: 0x0094)
    public static let delayResult = MessageType(rawValue: 0x0095)
    public static let logSubscribe = MessageType(rawValue: 0x0096)
    public static let logRecord = MessageType(rawValue: 0x0097)
    public static let cacheFlush = MessageType(rawValue: 0x0098)
    public static let cacheFlushed = MessageType(rawValue: 0x0099)

    /// Every type this build knows, in code order.
    public static let known: [MessageType] = [
        .hello, .helloAccept, .error, .configPush, .configResult, .ready, .heartbeat, .heartbeatAck, .statsRequest,
        .statsReport, .statusRequest, .statusReport, .groupStatusRequest, .groupStatus, .linkStatusRequest, .linkStatus,
        .reload, .shutdown, .select, .peerChannel,
        .tunDescriptorRequest, .tunDescriptor, .fakeIPLookup, .fakeIPAnswer, .mappingEvent, .fakeIPPin,
        .resolveRequest, .resolveAnswer, .dnsPacket, .processLookup, .processInfo, .connectionsRequest, .connections,
        .closeConnections, .connectionsClosed, .delayTest, .delayResult, .logSubscribe, .logRecord, .cacheFlush,
        .cacheFlushed,
    ]

    public var name: String? {
        switch self {
        case .hello: "hello"
        case .helloAccept: "helloAccept"
        case .error: "error"
        case .configPush: "configPush"
        case .configResult: "configResult"
        case .ready: "ready"
        case .heartbeat: "heartbeat"
        case .heartbeatAck: "heartbeatAck"
        case .statsRequest: "statsRequest"
        case .statsReport: "statsReport"
        case .statusRequest: "statusRequest"
        case .statusReport: "statusReport"
        case .groupStatusRequest: "groupStatusRequest"
        case .groupStatus: "groupStatus"
        case .linkStatusRequest: "linkStatusRequest"
        case .linkStatus: "linkStatus"
        case .select: "select"
        case .reload: "reload"
        case .shutdown: "shutdown"
        case .peerChannel: "peerChannel"
        case .tunDescriptorRequest: "tunDescriptorRequest"
        case .tunDescriptor: "tunDescriptor"
        case .fakeIPLookup: "fakeIPLookup"
        case .fakeIPAnswer: "fakeIPAnswer"
        case .mappingEvent: "mappingEvent"
        case .fakeIPPin: "fakeIPPin"
        case .resolveRequest: "resolveRequest"
        case .resolveAnswer: "resolveAnswer"
        case .dnsPacket: "dnsPacket"
        case .processLookup: "processLookup"
        case .processInfo: "processInfo"
        case .connectionsRequest: "connectionsRequest"
        case .connections: "connections"
        case .closeConnections: "closeConnections"
        case .connectionsClosed: "connectionsClosed"
        case .delayTest: "delayTest"
        case .delayResult: "delayResult"
        case .logSubscribe: "logSubscribe"
        case .logRecord: "logRecord"
        case .cacheFlush: "cacheFlush"
        case .cacheFlushed: "cacheFlushed"
        default: nil
        }
    }

    public var description: String {
        let hex = "0x" + String(rawValue, radix: 16, uppercase: false).leftPadded(to: 4)
        return name.map { "\($0) (\(hex))" } ?? "type \(hex)"
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
