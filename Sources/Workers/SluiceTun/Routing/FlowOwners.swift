import Dispatch
import IPC
import SluiceNet
import SluiceSystem
import SluiceNetlink
import Synchronization
import WorkerRuntime

/// The local socket a flow came from: its owner's uid (for `UID` rules) and its inode (to find the process).
struct SocketOwner: Sendable, Equatable {
    var uid: UInt32
    var inode: UInt32
}

/// Finds the local socket of a flow in the kernel's socket tables (fast: one netlink round trip).
protocol SocketOwnerTable: Sendable {
    func owner(tcp: Bool, local: InetEndpoint, remote: InetEndpoint) -> SocketOwner?
}

/// Finds the executable of the process that holds a socket: sluiced scans /proc for it (the worker may not), so
/// it is a request over IPC that may take up to ``FlowOwners/processTimeoutMilliseconds``.
protocol ProcessDirectory: Sendable {
    func executable(of owner: SocketOwner, timeoutMilliseconds: Int32) -> String?
}

extension SocketOwners: SocketOwnerTable {
    func owner(tcp: Bool, local: InetEndpoint, remote: InetEndpoint) -> SocketOwner? {
        let found: Owner? = owner(tcp: tcp, local: local, remote: remote)
        return found.map { SocketOwner(uid: $0.uid, inode: $0.inode) }
    }
}

extension SupervisorLink: ProcessDirectory {
    func executable(of owner: SocketOwner, timeoutMilliseconds: Int32) -> String? {
        guard
            case .processInfo(let found)? = request(
                .processLookup(ProcessLookup(inode: owner.inode, uid: owner.uid)), timeoutMilliseconds: timeoutMilliseconds),
            found.pid != 0
        else { return nil }
        return found.path
    }
}

/// Who owns a flow's local socket (`UID`, `PROCESS-NAME`, `PROCESS-PATH` rules), and where the slow half of that
/// question runs.
///
/// The socket table answers in tens of microseconds, so any thread asks it. The process lookup is a request to
/// sluiced that may wait up to 100 ms: neither the TUN reader nor the relay loop may wait for it, so it runs on one of
/// a few lanes (serial queues: at most ``laneCount`` lookups at once, whatever the connection rate) and its caller
/// gets the answer in a completion.
final class FlowOwners: Sendable {
    static let processTimeoutMilliseconds: Int32 = 100
    static let laneCount = 8

    private let sockets: (any SocketOwnerTable)?
    private let processes: (any ProcessDirectory)?
    private let lanes: [DispatchQueue]
    private let nextLane = Atomic<Int>(0)

    /// - Parameters:
    ///   - sockets: the kernel's socket tables (nil if NETLINK_SOCK_DIAG is unavailable: no flow has an owner).
    ///   - processes: sluiced (nil: process rules never match).
    init(sockets: (any SocketOwnerTable)?, processes: (any ProcessDirectory)?) {
        self.sockets = sockets
        self.processes = processes
        lanes = (0..<Self.laneCount).map { DispatchQueue(label: "sluice-owner-lookup-\($0)") }
    }

    /// No owners at all (tests, and flows from other machines behave like this).
    static let none = FlowOwners(sockets: nil, processes: nil)

    /// Whether processes can be looked up at all.
    var findsProcesses: Bool { processes != nil && sockets != nil }

    /// The local socket `local` → `remote`, if this machine holds it (fast).
    func socket(tcp: Bool, local: InetEndpoint, remote: InetEndpoint) -> SocketOwner? {
        sockets?.owner(tcp: tcp, local: local, remote: remote)
    }

    /// The executable holding `owner`'s socket; blocks up to ``processTimeoutMilliseconds``.
    func executable(of owner: SocketOwner) -> String? {
        processes?.executable(of: owner, timeoutMilliseconds: Self.processTimeoutMilliseconds)
    }

    /// Runs `work` on a lane: for decisions that may wait for a process lookup (or a name resolution).
    func offload(_ work: @escaping @Sendable () -> Void) {
        let lane = nextLane.add(1, ordering: .relaxed).newValue % lanes.count
        lanes[lane].async(execute: work)
    }
}
