import Dispatch
import IPC
import SluiceNet
import SluiceSystem
import Synchronization

/// The local socket a flow came from: its owner's uid (for `UID` rules) and its inode (to find the process).
package struct SocketOwner: Sendable, Equatable {
    package var uid: UInt32
    package var inode: UInt32

    package init(uid: UInt32, inode: UInt32) {
        self.uid = uid
        self.inode = inode
    }
}

/// Finds the local socket of a flow in the kernel's socket tables (fast: one netlink round trip).
package protocol SocketOwnerTable: Sendable {
    func owner(tcp: Bool, local: InetEndpoint, remote: InetEndpoint) -> SocketOwner?
}

/// Finds the executable of the process that holds a socket: sluiced scans /proc for it (the worker may not), so
/// it is a request over IPC that may take up to ``FlowOwners/processTimeoutMilliseconds``.
package protocol ProcessDirectory: Sendable {
    func executable(of owner: SocketOwner, timeoutMilliseconds: Int32) -> String?
}

/// Who owns a flow's local socket (`UID`, `PROCESS-NAME`, `PROCESS-PATH` rules), and where the slow half of that
/// question runs.
///
/// The socket table answers in tens of microseconds, so any thread asks it. The process lookup is a request to
/// sluiced that may wait up to 100 ms: neither the TUN reader nor the relay loop may wait for it, so it runs on one of
/// a few lanes (serial queues: at most ``laneCount`` lookups at once, whatever the connection rate) and its caller
/// gets the answer in a completion.
package final class FlowOwners: Sendable {
    package static let processTimeoutMilliseconds: Int32 = 100
    package static let laneCount = 8

    private let sockets: (any SocketOwnerTable)?
    private let processes: (any ProcessDirectory)?
    private let lanes: [DispatchQueue]
    private let nextLane = Atomic<Int>(0)

    /// - Parameters:
    ///   - sockets: the kernel's socket tables (nil if NETLINK_SOCK_DIAG is unavailable: no flow has an owner).
    ///   - processes: sluiced (nil: process rules never match).
    package init(sockets: (any SocketOwnerTable)?, processes: (any ProcessDirectory)?) {
        self.sockets = sockets
        self.processes = processes
        lanes = (0..<Self.laneCount).map { DispatchQueue(label: "sluice-owner-lookup-\($0)") }
    }

    /// No owners at all (tests, and flows from other machines behave like this).
    package static let none = FlowOwners(sockets: nil, processes: nil)

    /// Whether processes can be looked up at all.
    package var findsProcesses: Bool { processes != nil && sockets != nil }

    /// The local socket `local` → `remote`, if this machine holds it (fast).
    package func socket(tcp: Bool, local: InetEndpoint, remote: InetEndpoint) -> SocketOwner? {
        sockets?.owner(tcp: tcp, local: local, remote: remote)
    }

    /// The executable holding `owner`'s socket; blocks up to ``processTimeoutMilliseconds``.
    package func executable(of owner: SocketOwner) -> String? {
        processes?.executable(of: owner, timeoutMilliseconds: Self.processTimeoutMilliseconds)
    }

    /// Runs `work` on a lane: for decisions that may wait for a process lookup (or a name resolution).
    package func offload(_ work: @escaping @Sendable () -> Void) {
        let lane = nextLane.add(1, ordering: .relaxed).newValue % lanes.count
        lanes[lane].async(execute: work)
    }
}
