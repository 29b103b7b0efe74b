import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Which process holds a socket, from /proc: the answer to the tun worker's `processLookup`
/// (PROCESS-NAME and PROCESS-PATH rules). sluiced does it because reading other users'
/// `/proc/PID/fd` takes CAP_SYS_PTRACE, which no worker should hold: the worker asks for a
/// fact, not for the privilege.
enum ProcessTable {
    /// The pid and executable of a process (owned by `uid`) that has socket `inode` open.
    static func owner(ofSocket inode: UInt32, uid: UInt32) -> (pid: UInt32, path: String)? {
        let target = "socket:[\(inode)]"
        guard let proc = opendir("/proc") else { return nil }
        defer { closedir(proc) }
        var link = [CChar](repeating: 0, count: 64)
        while let entry = readdir(proc) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(cString: $0.bindMemory(to: CChar.self).baseAddress!)
            }
            guard let pid = UInt32(name) else { continue }
            // The socket's owner is the process's user (or root); skip the others cheaply.
            var info = stat()
            guard stat("/proc/\(pid)", &info) == 0, info.st_uid == uid || uid == 0 else { continue }
            guard let fds = opendir("/proc/\(pid)/fd") else { continue }
            defer { closedir(fds) }
            while let fd = readdir(fds) {
                let fdName = withUnsafeBytes(of: fd.pointee.d_name) {
                    String(cString: $0.bindMemory(to: CChar.self).baseAddress!)
                }
                guard fdName.first?.isNumber == true else { continue }
                let n = readlink("/proc/\(pid)/fd/\(fdName)", &link, link.count - 1)
                guard n > 0 else { continue }
                link[n] = 0
                if String(cString: link) == target {
                    let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")) ?? ""
                    return (pid, path)
                }
            }
        }
        return nil
    }
}
