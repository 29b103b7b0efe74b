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
        abstract:
            "Show each worker's state, pid, uptime, restarts, last exit and counters, the proxy groups, traffic and the top connections."
    )

    @Option(help: "Runtime directory of the running sluiced (default: $RUNTIME_DIRECTORY or /run/sluice).")
    var runtimeDir: String?

    @Flag(
        help:
            "Print the status document as JSON (for scripts); `traffic` and `connections` are added when the tun worker runs."
    )
    var json = false

    @Option(help: "How many connections to list (the busiest first).")
    var top = 10

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
        // The tun worker's connections, when it runs (the same document as the API's GET /connections).
        let connections: ConnectionsSnapshot? = try? ControlConnection.request(.connectionsRequest, socketPath: path) {
            message in
            if case .connections(let document) = message {
                return try? JSONDecoder().decode(ConnectionsSnapshot.self, from: Data(document))
            }
            return nil
        }
        if json {
            guard let connections, var object = try JSONSerialization.jsonObject(with: Data(document)) as? [String: Any]
            else {
                print(String(decoding: document, as: UTF8.self))
                return
            }
            let top = ConnectionTable.busiest(connections.connections, count: max(0, top))
            object["traffic"] = [
                "uploadTotal": connections.uploadTotal, "downloadTotal": connections.downloadTotal,
                "connections": connections.connections.count,
            ]
            object["connections"] = try JSONSerialization.jsonObject(with: JSONEncoder().encode(top))
            let merged = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: merged, as: UTF8.self))
        } else {
            let status = try JSONDecoder().decode(SupervisorStatus.self, from: Data(document))
            print(status.renderTable())
            if let connections { print(ConnectionTable.render(connections, top: max(0, top))) }
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
                description:
                    "cannot reach sluiced at \(socketPath): \(error.reason). Is it running (systemctl status sluice)? Pass --runtime-dir if it uses another directory; the socket is readable by root and the service group."
            )
        }
        let channel = FrameChannel(takingOwnershipOf: socket, maxPayload: 16 << 20, sendTimeoutMilliseconds: 5000)
        defer { channel.close() }
        do {
            try channel.send(
                .hello(Hello(role: .controlClient, pid: UInt32(getpid()), software: "sluiced-cli")), requestID: 1)
        } catch {
            // sluiced refuses a client it does not let in with an error and closes at once: the refusal may
            // already be waiting even though our hello could not be sent.
            if let early = try? channel.receive(timeoutMilliseconds: 1000),
                case .error(let report)? = try? early.frame.message()
            {
                throw Failure(description: "sluiced refused: \(report.message)")
            }
            throw error
        }
        guard let hello = try channel.receive(timeoutMilliseconds: 5000) else {
            throw Failure(description: "sluiced did not answer hello within 5 s")
        }
        if case .error(let report) = try hello.frame.message() {
            throw Failure(description: "sluiced refused: \(report.message)")
        }
        try channel.send(message, requestID: 2)
        guard let answer = try channel.receive(timeoutMilliseconds: 5000) else {
            throw Failure(description: "sluiced did not answer within 5 s")
        }
        let reply = try answer.frame.message()
        if case .error(let report) = reply { throw Failure(description: "sluiced: \(report.code): \(report.message)") }
        guard let value = extract(reply) else { throw Failure(description: "unexpected answer \(reply.type)") }
        return value
    }
}

/// The connections part of `sluiced status`: totals, then the busiest connections.
enum ConnectionTable {
    static func busiest(_ connections: [ConnectionsSnapshot.Connection], count: Int) -> [ConnectionsSnapshot.Connection]
    {
        Array(connections.sorted { ($0.upload + $0.download) > ($1.upload + $1.download) }.prefix(count))
    }

    static func render(_ snapshot: ConnectionsSnapshot, top: Int) -> String {
        var lines = [
            "traffic: up \(SupervisorStatus.byteCount(snapshot.uploadTotal)), down \(SupervisorStatus.byteCount(snapshot.downloadTotal)) since the tun worker started; \(snapshot.connections.count) connection\(snapshot.connections.count == 1 ? "" : "s") open"
        ]
        let shown = busiest(snapshot.connections, count: top)
        guard !shown.isEmpty else { return lines.joined(separator: "\n") }
        let header = ["ID", "NET", "SOURCE", "DESTINATION", "CHAIN", "RULE", "UP", "DOWN"]
        var rows = [header]
        for c in shown {
            let m = c.metadata
            let destination = (m.host.isEmpty ? m.destinationIP : m.host) + ":" + m.destinationPort
            let rule = c.rulePayload.isEmpty ? c.rule : "\(c.rule)(\(c.rulePayload))"
            rows.append([
                String(c.id.prefix(8)), m.network, "\(m.sourceIP):\(m.sourcePort)", destination,
                c.chains.reversed().joined(separator: " > "), rule,
                SupervisorStatus.byteCount(c.upload), SupervisorStatus.byteCount(c.download),
            ])
        }
        lines += SupervisorStatus.columns(rows)
        if snapshot.connections.count > shown.count {
            lines.append("(\(snapshot.connections.count - shown.count) more; --top N, or the API's GET /connections)")
        }
        return lines.joined(separator: "\n")
    }
}
