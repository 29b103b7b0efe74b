import IPC
import SluiceNet
import SluiceNetlink
import SluiceRouting
import SluiceSystem
import WorkerRuntime

// Where the router's owner lookups go in the tun worker: the kernel's socket tables (NETLINK_SOCK_DIAG) and
// sluiced (which may scan /proc; the worker may not).

extension SocketOwners: SocketOwnerTable {
    package func owner(tcp: Bool, local: InetEndpoint, remote: InetEndpoint) -> SocketOwner? {
        let found: Owner? = owner(tcp: tcp, local: local, remote: remote)
        return found.map { SocketOwner(uid: $0.uid, inode: $0.inode) }
    }
}

extension SupervisorLink: ProcessDirectory {
    package func executable(of owner: SocketOwner, timeoutMilliseconds: Int32) -> String? {
        guard
            case .processInfo(let found)? = request(
                .processLookup(ProcessLookup(inode: owner.inode, uid: owner.uid)),
                timeoutMilliseconds: timeoutMilliseconds),
            found.pid != 0
        else { return nil }
        return found.path
    }
}
