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

// The local proxy ports: the sockets sluiced bound, served by the relay and UDP loops.

extension RunningDataPlane {
    /// Takes over the local proxy ports' sockets sluiced bound (`SLUICE_INBOUND_FDS`: per listener in
    /// configuration order `TCP[:UDP]` descriptor numbers, `-` for one it could not bind) and routes their clients
    /// through `dispatcher`. Returns what is served, as `NAME ADDRESS:PORT`.
    static func serveLocalPorts(
        _ inbound: InboundConfiguration, descriptors: String?, relay: TCPRelayLoop, udp: UDPFlowTable,
        dispatcher: PacketDispatcher, logger: Logger
    ) throws -> [String] {
        guard let descriptors, !inbound.listeners.isEmpty else { return [] }
        udp.localDatagram = { [dispatcher] index, listener, local, client, target, payload, user in
            dispatcher.handleLocalDatagram(
                listener: index, listener, local: local, from: client, to: target, payload: payload, user: user)
        }
        var served: [String] = []
        for (index, item) in descriptors.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
            guard index < inbound.listeners.count, item != "-" else { continue }
            let numbers = item.split(separator: ":").compactMap { Int32($0) }
            guard let tcp = numbers.first else { continue }
            let listener = inbound.listeners[index]
            try relay.listenLocal(OwnedDescriptor(takingOwnershipOfDescriptor: tcp), index: index)
            if numbers.count > 1 {
                try udp.addLocalPort(OwnedDescriptor(takingOwnershipOfDescriptor: numbers[1]), index: index)
            }
            served.append("\(listener.name) \(InetEndpoint(listener.address, listener.port))")
        }
        return served
    }
}
