import SluiceSystem

#if canImport(Glibc)
import Glibc
#endif

/// Gives the state directory's contents back to the service user the workers run as.
///
/// The workers keep their files there (the dns worker's `fake-ip.store`, the tun worker's `selected.json` and
/// `tun-DEV.created`), as the service user. systemd's `StateDirectory=` in a unit without `User=` (sluiced must
/// start as root to hand out privileges) makes the directory *and its contents* root's at every start of the
/// unit whenever the directory's owner differs from root — which it always does, since sluiced gives the
/// directory to the service user. A state directory left by an older version, restored from a backup or edited
/// as root ends the same way. So at every start sluiced walks the directory and hands back what is not the
/// service user's, before any worker runs.
///
/// Why repair rather than open the files in sluiced and hand descriptors over: the workers create, rename and
/// compact their files (write a temporary file, fsync, rename), which needs a directory they can write, and
/// files added later (selections, provider caches) would each need a new hand-over. Repair keeps one rule —
/// everything under the state directory belongs to the service user — whoever broke it.
///
/// This is what systemd itself does to a `StateDirectory=` of a unit with `User=`: the directory is the
/// service's own. A directory shared with the rest of the system (`/`, `/var/lib`, `/tmp`, …) given by mistake
/// as `--state-dir` is refused, not walked.
///
/// Safety: the walk runs as root over a directory a (possibly compromised) worker can write, so it never
/// follows a symbolic link (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`), changes only directories and regular files,
/// and leaves a regular file with more than one hard link alone (a link to a file elsewhere could otherwise be
/// handed to the service user). It is bounded in depth and in entries.
enum StateOwnership {
    struct Report: Equatable {
        /// Paths (relative to the directory) given back to the service user.
        var repaired: [String] = []
        /// Paths left as they are, with why.
        var skipped: [String] = []
        /// What stopped the walk early, if anything.
        var failure: String?
    }

    static let maxDepth = 8
    static let maxEntries = 100_000

    /// Directories that hold other programs' files too: never walked.
    static let shared: Set<String> = [
        "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/media", "/mnt", "/opt", "/proc", "/root",
        "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/var/cache", "/var/lib", "/var/log", "/var/run",
        "/var/tmp", "/var/spool",
    ]

    /// Makes `directory` itself and everything under it owned by `uid`:`gid`.
    static func repair(_ directory: String, uid: uid_t, gid: gid_t) -> Report {
        var report = Report()
        let resolved = realpath(directory, nil).map { pointer in
            defer { free(pointer) }
            return String(cString: pointer)
        }
        if let resolved, shared.contains(resolved) {
            report.failure =
                "\(resolved) is shared with the rest of the system, so its contents were not given to the service user; use a directory of sluice's own (--state-dir /var/lib/sluice)"
            return report
        }
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            report.failure = "cannot open \(directory): \(String(cString: strerror(errno)))"
            return report
        }
        var visited = 0
        // Contents first, the directory last: under systemd sluiced is root without CAP_DAC_OVERRIDE or
        // CAP_DAC_READ_SEARCH, so once a directory (mode 0750) is the service user's it may not look inside.
        walk(fd, relative: "", depth: 0, uid: uid, gid: gid, visited: &visited, report: &report)
        give(fd, name: nil, relative: ".", uid: uid, gid: gid, report: &report)
        close(fd)
        return report
    }

    /// Walks the directory open at `fd` (which this closes not), handing back each entry.
    private static func walk(
        _ fd: CInt, relative: String, depth: Int, uid: uid_t, gid: gid_t, visited: inout Int, report: inout Report
    ) {
        guard depth < maxDepth else {
            report.skipped.append("\(relative.isEmpty ? "." : relative): deeper than \(maxDepth) levels")
            return
        }
        // fdopendir takes the descriptor: give it a duplicate, so the caller's stays open.
        let copy = dup(fd)
        guard copy >= 0, let stream = fdopendir(copy) else {
            if copy >= 0 { close(copy) }
            report.failure = "cannot list \(relative.isEmpty ? "." : relative): \(String(cString: strerror(errno)))"
            return
        }
        defer { closedir(stream) }
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            visited += 1
            guard visited <= maxEntries else {
                report.failure = "more than \(maxEntries) entries; the rest were left as they are"
                return
            }
            let path = relative.isEmpty ? name : relative + "/" + name
            var st = stat()
            guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else {
                report.skipped.append("\(path): cannot stat (\(String(cString: strerror(errno))))")
                continue
            }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                let child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else {
                    report.skipped.append("\(path): cannot open (\(String(cString: strerror(errno))))")
                    continue
                }
                walk(child, relative: path, depth: depth + 1, uid: uid, gid: gid, visited: &visited, report: &report)
                give(child, name: nil, relative: path, uid: uid, gid: gid, report: &report)
                close(child)
            case S_IFREG:
                guard st.st_nlink == 1 || (st.st_uid == uid && st.st_gid == gid) else {
                    report.skipped.append("\(path): has \(st.st_nlink) hard links")
                    continue
                }
                give(fd, name: name, relative: path, uid: uid, gid: gid, report: &report)
            default:
                // Sockets, FIFOs, devices and symbolic links: nothing a worker keeps; left alone, never followed.
                if st.st_uid != uid { report.skipped.append("\(path): not a regular file or directory") }
            }
        }
    }

    /// chown of the directory `fd` (name nil) or of its entry `name` (never through a symbolic link), unless it
    /// is the owner's already.
    private static func give(_ fd: CInt, name: String?, relative: String, uid: uid_t, gid: gid_t, report: inout Report)
    {
        var st = stat()
        let found = name.map { fstatat(fd, $0, &st, AT_SYMLINK_NOFOLLOW) } ?? fstat(fd, &st)
        guard found == 0, st.st_uid != uid || st.st_gid != gid else { return }
        let rc = name.map { fchownat(fd, $0, uid, gid, AT_SYMLINK_NOFOLLOW) } ?? fchown(fd, uid, gid)
        if rc == 0 {
            report.repaired.append(relative)
        } else {
            report.skipped.append("\(relative): chown failed (\(String(cString: strerror(errno))))")
        }
    }
}
