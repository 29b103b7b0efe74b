import Foundation
import IPC
import NIOCore
import NIOPosix
import SluiceConfig
import SluiceSystem
import Testing

@testable import ExternalController

#if canImport(Glibc)
import Glibc
#endif

/// The streams' timing without a network: a ``StreamDriver`` on a real event loop, and sluiced played by a
/// backend that the test drains from the mailbox (or does not, to play a sluiced that does not answer).
@Suite("stream driver")
struct StreamDriverTests {
    /// sluiced without workers: its state, and an error for every question to a worker.
    final class WorkerlessBackend: ControllerBackend {
        func controllerState() -> ControllerState {
            ControllerState(
                configuration: SluiceConfiguration(), configPath: "/dev/null", generation: 1, version: "test",
                workers: [],
                groups: [])
        }

        func controllerAsk(_ worker: ControllerWorker, _ request: Message, reply: @escaping @Sendable (Message) -> Void)
        {
            reply(
                .error(
                    ErrorReport(code: .rejected, message: "the \(worker.rawValue) worker is off in the configuration")))
        }

        func controllerPatch(mode: SluiceConfiguration.Mode?, logLevel: SluiceConfiguration.LogLevel?) {}
        func controllerReload(path: String?, payload: String?) -> String? { nil }
        func controllerFollowLogs(priority: UInt8) {}
        func controllerUpdateRuleProvider(_ name: String, done: @escaping @Sendable (ProviderUpdate) -> Void) {
            done(.notFound)
        }
        func controllerRestartWorkers() {}
    }

    /// A running driver and the lines it sent, with the seconds since it started.
    final class Running: Sendable {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let mailbox: ControllerMailbox
        let lines = Locked<[(at: Double, text: String)]>([])
        let started = Date()
        private let stopped = Locked(false)
        private let driver: NIOLoopBound<StreamDriver>

        /// `answering`: drain the mailbox on a thread of its own, as sluiced's loop does.
        init(_ kind: StreamKind, answering: Bool) throws {
            let mailbox = try ControllerMailbox()
            self.mailbox = mailbox
            let core = ControllerCore(mailbox: mailbox, settings: ControllerConfiguration(), version: "test")
            let loop = group.next()
            let lines = self.lines
            let started = self.started
            driver = try loop.submit {
                let driver = StreamDriver(kind: kind, core: core, loop: loop) { text in
                    lines.withLock { $0.append((Date().timeIntervalSince(started), text)) }
                }
                driver.start()
                return NIOLoopBound(driver, eventLoop: loop)
            }.wait()
            if answering {
                let stopped = self.stopped
                Thread.detachNewThread {
                    let backend = WorkerlessBackend()
                    while !stopped.withLock({ $0 }) {
                        var descriptor = pollfd(fd: mailbox.descriptor, events: Int16(POLLIN), revents: 0)
                        if poll(&descriptor, 1, 50) > 0 { mailbox.run(with: backend) }
                    }
                }
            }
        }

        var samples: [(at: Double, object: [String: Any])] {
            lines.withLock { $0 }.map { line in
                (line.at, (try? JSONSerialization.jsonObject(with: Data(line.text.utf8))) as? [String: Any] ?? [:])
            }
        }

        /// How many questions were put in the mailbox and not taken out (the eventfd's counter).
        func pendingQuestions() -> UInt64 {
            var count: UInt64 = 0
            var descriptor = pollfd(fd: mailbox.descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 0) > 0 else { return 0 }
            _ = read(mailbox.descriptor, &count, 8)
            return count
        }

        func stop() {
            stopped.withLock { $0 = true }
            let driver = self.driver
            try? group.next().submit { driver.value.stop() }.wait()
            try? group.syncShutdownGracefully()
        }
    }

    @Test("no tun worker: /traffic sends zeros at once and then every second")
    func trafficWithoutWorker() throws {
        let running = try Running(.traffic, answering: true)
        defer { running.stop() }
        Thread.sleep(forTimeInterval: 2.3)
        let samples = running.samples
        #expect(samples.count == 3, "\(samples.map(\.at))")
        #expect((samples.first?.at ?? 9) < 0.3, "the first sample at once: \(samples.map(\.at))")
        #expect(
            samples.allSatisfy {
                $0.object["up"] as? Int == 0 && $0.object["down"] as? Int == 0 && $0.object["upTotal"] as? Int == 0
            })
    }

    @Test("sluiced does not answer: /memory still sends a sample every second, with one question out, not one a second")
    func memoryWhileSluicedIsBusy() throws {
        let running = try Running(.memory, answering: false)
        defer { running.stop() }
        Thread.sleep(forTimeInterval: 2.3)
        let samples = running.samples
        #expect(samples.count == 3, "\(samples.map(\.at))")
        #expect(
            (samples.first?.at ?? 9) < 0.8, "the first sample after at most the answer's wait: \(samples.map(\.at))")
        #expect(
            samples.allSatisfy { ($0.object["inuse"] as? Int ?? 0) > 1_000_000 },
            "this process's memory: \(samples.map(\.object))")
        #expect(running.pendingQuestions() == 1, "no question piled up behind the one sluiced has not answered")
    }

    @Test("no tun worker: /connections sends an empty list at once and then every interval")
    func connectionsWithoutWorker() throws {
        let running = try Running(.connections(intervalMilliseconds: 300), answering: true)
        defer { running.stop() }
        Thread.sleep(forTimeInterval: 1.0)
        let samples = running.samples
        #expect(samples.count >= 3 && samples.count <= 5, "\(samples.map(\.at))")
        #expect((samples.first?.at ?? 9) < 0.3)
        #expect(
            samples.allSatisfy { ($0.object["connections"] as? [Any])?.isEmpty == true && $0.object["memory"] != nil })
    }
}
