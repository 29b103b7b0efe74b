import Glibc
import IPC
import SluiceSystem
import SluiceTestSupport
import Testing

/// Frames over real AF_UNIX socket pairs, including descriptor passing.
@Suite("FrameChannel over a socketpair")
struct FrameChannelTests {
    private func pair() throws -> (FrameChannel, FrameChannel) {
        let (a, b) = try UnixSocket.pair(.stream)
        return (FrameChannel(takingOwnershipOf: a), FrameChannel(takingOwnershipOf: b))
    }

    @Test("a pipe's write end passes across and works on the other side")
    func descriptorPassing() throws {
        let (left, right) = try pair()
        let pipe = try Descriptors.pipe()
        try left.send(.peerChannel(PeerChannel(peer: .dnsWorker, peerPID: 99)), descriptors: [pipe.write.rawValue])
        pipe.write.close()  // only the copy in flight keeps the write end alive now

        let received = try #require(try right.receive(timeoutMilliseconds: 2000))
        #expect(try received.frame.message() == .peerChannel(PeerChannel(peer: .dnsWorker, peerPID: 99)))
        #expect(received.descriptors.count == 1)
        let passed = received.descriptors[0]
        #expect(passed.rawValue != pipe.write.rawValue || !pipe.write.isOpen)

        try Descriptors.writeAll(passed.rawValue, Array("through the socket".utf8))
        passed.close()
        #expect(String(decoding: try Descriptors.read(pipe.read.rawValue), as: UTF8.self) == "through the socket")
        // Every write end is closed now: the pipe reports EOF.
        #expect(try Descriptors.read(pipe.read.rawValue).isEmpty)
    }

    @Test("several descriptors in one frame, and frames around it, stay paired")
    func descriptorOrdering() throws {
        let (left, right) = try pair()
        let pipes = try (0..<3).map { _ in try Descriptors.pipe() }
        try left.send(.statsRequest)
        try left.send(.reload(Reload(reason: "fds")), descriptors: pipes.map { $0.write.rawValue })
        try left.send(.statsRequest)
        let first = try #require(try right.receive(timeoutMilliseconds: 2000))
        #expect(first.descriptors.isEmpty)
        let second = try #require(try right.receive(timeoutMilliseconds: 2000))
        #expect(second.descriptors.count == 3)
        for (i, fd) in second.descriptors.enumerated() {
            try Descriptors.writeAll(fd.rawValue, [UInt8(i)])
            #expect(try Descriptors.read(pipes[i].read.rawValue) == [UInt8(i)])
        }
        #expect(try right.receive(timeoutMilliseconds: 2000)?.descriptors.isEmpty == true)
    }

    @Test("a large config payload crosses in one frame")
    func largePayload() throws {
        let (left, right) = try pair()
        let document = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let sender = try OSThread.start(name: "sender") {
            try? left.send(.configPush(ConfigPush(generation: 9, document: document)))
        }
        let received = try #require(try right.receive(timeoutMilliseconds: 10_000))
        #expect(try received.frame.message() == .configPush(ConfigPush(generation: 9, document: document)))
        sender.join()
    }

    @Test("receive times out with nil, then the peer's close reads as peerClosed")
    func timeoutAndClose() throws {
        let (left, right) = try pair()
        #expect(try right.receive(timeoutMilliseconds: 50) == nil)
        left.close()
        #expect(throwsCode(.peerClosed) { try right.receive(timeoutMilliseconds: 2000) })
    }

    @Test("a zero timeout returns what has already arrived, and nil when nothing has")
    func zeroTimeoutPolls() throws {
        let (left, right) = try pair()
        #expect(try right.receive(timeoutMilliseconds: 0) == nil)
        try left.send(.statsRequest, requestID: 5)
        try left.send(.statsRequest, requestID: 6)
        #expect(try right.receive(timeoutMilliseconds: 0)?.header.requestID == 5)
        #expect(try right.receive(timeoutMilliseconds: 0)?.header.requestID == 6)
        #expect(try right.receive(timeoutMilliseconds: 0) == nil)
    }

    @Test("a peer that dies mid-frame is reported as truncated")
    func midFrameDeath() throws {
        let (a, b) = try UnixSocket.pair(.stream)
        let right = FrameChannel(takingOwnershipOf: b)
        let bytes = Frame(.reload(Reload(reason: "cut short"))).encoded()
        try Descriptors.writeAll(a.rawValue, Array(bytes.prefix(25)))
        a.close()
        #expect(throwsCode(.truncated) { try right.receive(timeoutMilliseconds: 2000) })
    }

    @Test("an announced descriptor that never arrives is a descriptor mismatch")
    func missingDescriptor() throws {
        let (left, right) = try pair()
        var frame = Frame(.peerChannel(PeerChannel(peer: .tunWorker, peerPID: 1)))
        frame.header.descriptorCount = 1
        try left.send(frame: frame, descriptors: [])
        #expect(throwsCode(.descriptorMismatch) { try right.receive(timeoutMilliseconds: 2000) })
    }

    @Test("an unknown type gets an error reply and the channel keeps working")
    func unknownTypeReply() throws {
        let (left, right) = try pair()
        try left.send(
            frame: Frame(
                header: FrameHeader(type: MessageType(rawValue: 0x7777), requestID: 42, payloadLength: 2),
                payload: [1, 2]))
        try left.send(.statsRequest, requestID: 43)
        let first = try #require(try right.receiveMessage(timeoutMilliseconds: 2000))
        guard case .failure(let error) = first.message else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.code == .unknownMessageType)
        let second = try #require(try right.receiveMessage(timeoutMilliseconds: 2000))
        #expect(try second.message.get() == .statsRequest)
        // The sender got an error reply naming its request.
        let reply = try #require(try left.receive(timeoutMilliseconds: 2000))
        #expect(reply.header.isReply && reply.header.requestID == 42)
        guard case .error(let report) = try reply.frame.message() else {
            Issue.record("expected an error message")
            return
        }
        #expect(report.code == .unknownMessageType)
    }

    @Test("garbage on the socket is a fatal badMagic, not a trap")
    func garbage() throws {
        let (a, b) = try UnixSocket.pair(.stream)
        let right = FrameChannel(takingOwnershipOf: b)
        try Descriptors.writeAll(a.rawValue, Array(repeating: 0x41, count: 100))
        #expect(throwsCode(.badMagic) { try right.receive(timeoutMilliseconds: 2000) })
    }

    @Test("the peer's credentials are ours on a socketpair")
    func credentials() throws {
        let (left, _) = try pair()
        let cred = try left.peerCredentials()
        #expect(cred.pid == getpid())
        #expect(cred.uid == getuid())
    }
}
