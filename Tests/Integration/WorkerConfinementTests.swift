import Foundation
import SluiceSystem
import SluiceTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What a worker cannot do, tried for real: sluiced starts a probe in the worker's place
/// (`--worker-executable KIND=PATH`), so it gets exactly the worker's uid, capabilities, no_new_privs and
/// bounding set, tries what the worker must not be able to do, and writes what happened.
@Suite(
    "worker confinement (probes started as workers)", .serialized,
    .enabled(if: geteuid() == 0 && access("/usr/bin/python3", X_OK) == 0, "needs root and python3"))
struct WorkerConfinementTests {
    /// Runs the probe as worker `kind` and returns its report (one `what: outcome` line each).
    static func probe(as kind: String) throws -> String {
        let harness = try SluicedHarness(config: SluicedHarness.config(tun: kind == "tun", dns: kind == "dns"))
        defer { harness.stop() }
        let results = harness.directory + "/probe"
        try FileManager.default.createDirectory(atPath: results, withIntermediateDirectories: true)
        chmod(results, 0o777)
        let report = results + "/report.txt"
        let script = harness.directory + "/probe.py"
        try """
        #!/usr/bin/python3
        import ctypes, os, socket
        out = []
        def attempt(what, action):
            try:
                action()
                out.append(f"{what}: allowed")
            except OSError as e:
                out.append(f"{what}: denied ({e.strerror})")
        def bind53():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 53))
        attempt("bind port 53", bind53)
        attempt("read /etc/shadow", lambda: open("/etc/shadow").read())
        libc = ctypes.CDLL(None, use_errno=True)
        def ptrace_parent():
            # PTRACE_ATTACH to sluiced (root): needs CAP_SYS_PTRACE over another uid.
            if libc.ptrace(16, os.getppid(), 0, 0) != 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        attempt("ptrace sluiced", ptrace_parent)
        attempt("write /etc/sluice-probe", lambda: open("/etc/sluice-probe", "w").write("x"))
        def setuid_root():
            os.setuid(0)
        attempt("setuid(0)", setuid_root)
        status = open("/proc/self/status").read().splitlines()
        out += [l for l in status if l.startswith(("Uid:", "CapEff:", "CapBnd:", "NoNewPrivs:"))]
        with open("\(report).tmp", "w") as f:
            f.write("\\n".join(out) + "\\n")
        os.rename("\(report).tmp", "\(report)")
        """.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        chmod(harness.directory, 0o755)
        try harness.start(arguments: ["--worker-executable", "\(kind)=\(script)"])
        _ = harness.waitUntil(10) { access(report, F_OK) == 0 }
        return (try? String(contentsOfFile: report, encoding: .utf8)) ?? "no report\n\(harness.log)"
    }

    @Test(
        "a worker's identity cannot bind port 53, read /etc/shadow, ptrace sluiced, write to /etc or setuid(0)",
        arguments: [("dns", "0000000000000000"), ("tun", "0000000000001000")])
    func confined(kind: String, capabilities: String) throws {
        let report = try Self.probe(as: kind)
        for denied in ["bind port 53", "read /etc/shadow", "ptrace sluiced", "write /etc/sluice-probe", "setuid(0)"] {
            #expect(report.contains("\(denied): denied"), "\(kind): \(denied)\n\(report)")
        }
        #expect(report.contains("CapEff:\t\(capabilities)"), "\(report)")
        #expect(report.contains("CapBnd:\t\(capabilities)"), "the bounding set holds nothing more\n\(report)")
        #expect(report.contains("NoNewPrivs:\t1"), "\(report)")
        #expect(access("/etc/sluice-probe", F_OK) != 0)
    }
}
