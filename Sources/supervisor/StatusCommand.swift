import ArgumentParser
import Foundation
import IPC
import SluiceSystem
import Supervision

#if canImport(Glibc)
import Glibc
#endif

/// `sluiced status [--json]`: asks the running supervisor over its control socket.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show each worker's state, pid, uptime, restarts, last exit and counters.")

    @Option(help: "Runtime directory of the running sluiced (default: $RUNTIME_DIRECTORY or /run/sluice).")
    var runtimeDir: String?

    @Flag(help: "Print the status document as JSON (for scripts).")
    var json = false

    func run() throws {
        let runtime = runtimeDir ?? ProcessInfo.processInfo.environment["RUNTIME_DIRECTORY"] ?? "/run/sluice"
        let path = runtime + "/control.sock"
        let document: [UInt8]
        do {
            document = try ControlConnection.request(.statusRequest, socketPath: path) { message in
                if case .statusReport(let document) = message { return document }
                return nil
            }
        } catch {
            writeStandardError("sluiced status: \(error)\n")
            throw ExitCode(1)
        }
        if json {
            print(String(decoding: document, as: UTF8.self))
        } else {
            let status = try JSONDecoder().decode(SupervisorStatus.self, from: Data(document))
            print(status.renderTable())
        }
    }
}

/// One request/answer exchange with a running supervisor on its control socket.
enum ControlConnection {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func request<T>(_ message: Message, socketPath: String, extract: (Message) -> T?) throws -> T {
        let socket: OwnedDescriptor
        do {
            socket = try UnixSocket.connect(path: socketPath)
        } catch {
            throw Failure(
                description: "cannot reach sluiced at \(socketPath): \(error.reason). Is it running (systemctl status sluice)? Pass --runtime-dir if it uses another directory; the socket is readable by root and the service group.")
        }
        let channel = FrameChannel(takingOwnershipOf: socket, maxPayload: 16 << 20, sendTimeoutMilliseconds: 5000)
        defer { channel.close() }
        do {
            try channel.send(.hello(Hello(role: .controlClient, pid: UInt32(getpid()), software: "sluiced-cli")), requestID: 1)
        } catch {
            // sluiced refuses a client it does not let in with an error and closes at once: the refusal may
            // already be waiting even though our hello could not be sent.
            if let early = try? channel.receive(timeoutMilliseconds: 1000), case .error(let report)? = try? early.frame.message() {
                throw Failure(description: "sluiced refused: \(report.message)")
            }
            throw error
        }
        guard let hello = try channel.receive(timeoutMilliseconds: 5000) else { throw Failure(description: "sluiced did not answer hello within 5 s") }
        if case .error(let report) = try hello.frame.message() { throw Failure(description: "sluiced refused: \(report.message)") }
        try channel.send(message, requestID: 2)
        guard let answer = try channel.receive(timeoutMilliseconds: 5000) else { throw Failure(description: "sluiced did not answer within 5 s") }
        let reply = try answer.frame.message()
        if case .error(let report) = reply { throw Failure(description: "sluiced: \(report.code): \(report.message)") }
        guard let value = extract(reply) else { throw Failure(description: "unexpected answer \(reply.type)") }
        return value
    }
}
