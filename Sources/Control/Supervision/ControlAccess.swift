import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// Who may use the control socket, decided from the peer's kernel credentials (SO_PEERCRED) rather than from
/// the socket file's mode alone: root; the user sluiced runs as; members of the control group
/// (`supervisor.group`, default the service user's group) — but never the service user itself, which is what
/// the workers run as: a compromised worker must not be able to reload, select or stop the suite.
struct ControlAccess: Sendable {
    /// sluiced's effective uid.
    var owner: uid_t
    /// The workers' uid (nil when sluiced runs unprivileged and the workers share its uid).
    var serviceUser: uid_t?
    /// Members of this group may connect.
    var group: gid_t?

    /// nil when `peer` may connect; otherwise why not, said to the client and logged.
    func refusal(_ peer: PeerCredentials, supplementaryGroups: [gid_t]) -> String? {
        if peer.uid == 0 || (peer.uid == owner && peer.uid != serviceUser) { return nil }
        if let serviceUser, peer.uid == serviceUser {
            return "uid \(peer.uid) is the workers' service user, which may not control sluiced"
        }
        if let group, peer.gid == group || supplementaryGroups.contains(group) { return nil }
        let groupText = group.map { " or members of group \($0)" } ?? ""
        return "uid \(peer.uid) (gid \(peer.gid)) may not use this control socket: only root, uid \(owner)\(groupText)"
    }

    /// The supplementary groups of `pid` (`Groups:` in /proc/PID/status); empty when unreadable.
    static func supplementaryGroups(of pid: pid_t) -> [gid_t] {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Groups:") })
        else { return [] }
        return line.dropFirst("Groups:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap {
            gid_t($0)
        }
    }
}
