#!/usr/bin/env python3
"""The chaos run behind Scripts/chaos.sh (stdlib only; see docs/reliability.md#chaos).

  chaos.py run BIN LAB WORK      the orchestrator (root namespace): starts sluiced in $LAB-router,
                                 load in $LAB-client, kills, stops and reloads, checks, prints figures;
                                 exit status 0 only when every check held
  chaos.py agent                 in the client namespace: answers probes on stdin (one JSON line each)
  chaos.py udp-stream OUT        in the client namespace: a datagram every 10 ms to the lab's echo
  chaos.py dns-loop OUT          in the client namespace: n1.test ... n200.test, round and round
  chaos.py http-loop OUT         in the client namespace: 100 MiB downloads, one after another

The load generators run until SIGTERM (bounded by LOAD_MAX_SECONDS) and then write one JSON
summary to OUT. Every time is time.monotonic() (CLOCK_MONOTONIC, the same clock in every
namespace), so the orchestrator can line up a download's failure or a UDP gap with a worker's
outage.
"""
import hashlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time
import importlib.util

# The lab's own client helpers (one GET /small for the tests, the lab and this script).
_spec = importlib.util.spec_from_file_location(
    "lab_servers", os.path.join(os.path.dirname(os.path.abspath(__file__)), "lab-servers.py"))
LAB_SERVERS = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(LAB_SERVERS)

HTTP_HOST = "10.77.200.2"
HIJACKED_DNS = "10.77.200.9"  # nobody lives there: only tun.dns-hijack answers it
LISTEN_DNS = "10.77.1.1"  # the router's dns.listen (sluiced holds the socket across restarts)
NAMES = ["n%d.test" % i for i in range(1, 201)]
WORKER_EXECUTABLES = {"tun": "sluice-tun-worker", "dns": "sluice-dns-worker", "keepalive": "sluice-keepalive"}
LOAD_MAX_SECONDS = float(os.environ.get("LOAD_MAX_SECONDS", "900"))
mono = time.monotonic


# ---------------------------------------------------------------- client side

def dns_query(server, name, timeout):
    """One A query over UDP; the address answered, or None."""
    qid = random.randrange(65536)
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    query = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(query, (server, 53))
        deadline = mono() + timeout
        while True:
            s.settimeout(max(0.001, deadline - mono()))
            data, _ = s.recvfrom(2048)
            if data[:2] == query[:2]:
                break
    except OSError:
        return None
    finally:
        s.close()
    if len(data) < 12 or struct.unpack(">H", data[6:8])[0] == 0:
        return None
    offset = 12 + len(question) + 4
    while offset + 12 <= len(data):
        if data[offset] & 0xC0 == 0xC0:
            offset += 2
        else:
            while offset < len(data) and data[offset] != 0:
                offset += 1 + data[offset]
            offset += 1
        rtype, _, _, rdlength = struct.unpack(">HHIH", data[offset:offset + 10])
        offset += 10
        if rtype == 1 and rdlength == 4:
            return socket.inet_ntoa(data[offset:offset + 4])
        offset += rdlength
    return None


def http_get(address, host, timeout):
    """GET /small on a fresh connection: "ok", "refused" (RST: a REJECT rule), "timeout" or "error"."""
    try:
        data = LAB_SERVERS.fetch_small(address, 80, timeout=timeout, host_header=host)
    except (ConnectionRefusedError, ConnectionResetError):
        return "refused"
    except socket.timeout:
        return "timeout"
    except OSError:
        return "error"
    if LAB_SERVERS.small_ok(data):
        return "ok"
    return "refused" if not data else "error"


def probe_attempt(name, old):
    """One attempt: every step a new connection or query through the TUN; the step that failed, or None."""
    if http_get(HTTP_HOST, HTTP_HOST, 0.5) != "ok":
        return "direct"
    fake = dns_query(HIJACKED_DNS, name, 0.5)
    if fake is None:
        return "dns"
    if http_get(fake, name, 0.5) != "ok":
        return "fake"
    if old != "-" and http_get(old, "old", 0.5) != "ok":
        return "old-fake"
    return None


def agent():
    """Probes on request, one JSON line per answer.

    `probe SEQ TIMEOUT OLDFAKE`: starts an attempt every 20 ms (each on its own thread, each step with a
    0.5 s timeout) until one succeeds in full; answers when that attempt ended. An attempt is: GET by
    address; a hijacked DNS query for a name never asked before (probeSEQ.test) and GET to the fake
    address answered; GET to an older fake address (OLDFAKE, "-" for none). Staggered attempts keep the
    measurement at 20 ms resolution without mistaking a slow but working path for a broken one.
    `name NAME`: resolve NAME (hijacked) and GET it once; prints the outcome.
    `resolve NAME SERVER`: one A query."""
    import threading
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "probe":
            seq, timeout, old = words[1], float(words[2]), words[3]
            name = "probe%s.test" % seq
            lock = threading.Lock()
            done = threading.Event()
            state = {"t": None, "attempts": 0, "failed_at": {}}

            def attempt():
                failed = probe_attempt(name, old)
                with lock:
                    if failed is None:
                        if state["t"] is None:
                            state["t"] = mono()
                        done.set()
                    else:
                        state["failed_at"][failed] = state["failed_at"].get(failed, 0) + 1

            start = mono()
            threads = []
            while not done.is_set() and mono() - start < timeout:
                threads = [t for t in threads if t.is_alive()]
                if len(threads) < 64:
                    t = threading.Thread(target=attempt, daemon=True)
                    t.start()
                    threads.append(t)
                    state["attempts"] += 1
                done.wait(0.02)
            for t in threads:
                t.join(2.0)
            with lock:
                if state["t"] is not None:
                    result = {"ok": True, "t": state["t"], "attempts": state["attempts"]}
                else:
                    result = {"ok": False, "attempts": state["attempts"], "failed_at": state["failed_at"]}
            print(json.dumps(result), flush=True)
        elif words[0] == "name":
            fake = dns_query(HIJACKED_DNS, words[1], 1.0)
            outcome = http_get(fake, words[1], 1.0) if fake else "nodns"
            print(json.dumps({"outcome": outcome, "fake": fake}), flush=True)
        elif words[0] == "resolve":
            print(json.dumps({"fake": dns_query(words[2], words[1], 1.0)}), flush=True)
        else:
            print(json.dumps({"error": "unknown command"}), flush=True)


class Stop:
    """SIGTERM ends a load generator's loop (it then writes its summary)."""
    requested = False

    @classmethod
    def install(cls):
        signal.signal(signal.SIGTERM, lambda *_: setattr(cls, "requested", True))

    @classmethod
    def running(cls, started):
        return not cls.requested and mono() - started < LOAD_MAX_SECONDS


def udp_stream(out):
    """A datagram every 10 ms to the UDP echo; records when replies stop and start again (gaps over
    200 ms), then a final 200-datagram exchange after the chaos."""
    Stop.install()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((HTTP_HOST, 7))
    s.setblocking(False)
    sent = received = 0
    last_reply = None
    gaps = []
    started = mono()
    next_send = started
    while Stop.running(started):
        now = mono()
        if now >= next_send:
            try:
                s.send(struct.pack(">Q", sent) + b"u" * 56)
                sent += 1
            except OSError:
                pass
            next_send += 0.01
            if next_send < now:
                next_send = now + 0.01
        while True:
            try:
                s.recv(2048)
            except (BlockingIOError, ConnectionRefusedError):
                break
            received += 1
            now = mono()
            if last_reply is not None and now - last_reply > 0.2:
                gaps.append([last_reply, now])
            last_reply = now
        time.sleep(0.002)
    if last_reply is not None and mono() - last_reply > 0.2:
        gaps.append([last_reply, None])  # never resumed
    # Final check, the chaos over: 200 datagrams, 10 ms apart, every reply counted.
    # Replies to the stream may still be on their way: only distinct "final" replies count.
    finals = set()

    def drain():
        while True:
            try:
                data = s.recv(2048)
            except (BlockingIOError, ConnectionRefusedError):
                return
            at = data.find(b"final")
            if at >= 0:
                finals.add(data[at + 5:at + 9])

    for i in range(200):
        try:
            s.send(b"final" + struct.pack(">I", i))
        except OSError:
            pass
        time.sleep(0.01)
        drain()
    deadline = mono() + 1
    while len(finals) < 200 and mono() < deadline:
        drain()
        time.sleep(0.01)
    final_received = len(finals)
    json.dump({"sent": sent, "received": received, "gaps": gaps, "final_sent": 200, "final_received": final_received},
              open(out, "w"))


def dns_loop(out):
    """n1.test ... n200.test over and over, alternately through dns.listen (10.77.1.1) and through the
    TUN's hijack; remembers the first address each name got and counts every later answer that differs,
    and any address answered for two names. After SIGTERM it asks every name once more."""
    Stop.install()
    first = {}
    owner = {}
    queries = answered = 0
    mismatches = []
    started = mono()

    def ask(name, server, timeout):
        nonlocal queries, answered
        queries += 1
        address = dns_query(server, name, timeout)
        if address is None:
            return None
        answered += 1
        now = mono()
        if name not in first:
            first[name] = (address, now)
        elif first[name][0] != address:
            mismatches.append({"name": name, "first": first[name][0], "first_at": first[name][1], "now": address, "at": now})
        if owner.setdefault(address, name) != name:
            mismatches.append({"address": address, "names": [owner[address], name], "at": now})
        return address

    i = 0
    while Stop.running(started):
        ask(NAMES[i % len(NAMES)], LISTEN_DNS if i % 2 == 0 else HIJACKED_DNS, 0.5)
        i += 1
        time.sleep(0.01)
    # Final pass: every name again, both ways, after the chaos.
    final_checked = 0
    for name in NAMES:
        for server in (LISTEN_DNS, HIJACKED_DNS):
            if ask(name, server, 2.0) is not None and name in first:
                final_checked += 1
    json.dump({"queries": queries, "answered": answered, "names": len(first), "mismatches": mismatches,
               "final_checked": final_checked,
               "first": {n: a for n, (a, _) in first.items()}, "first_at": {n: t for n, (_, t) in first.items()}},
              open(out, "w"))


def http_loop(out):
    """100 MiB downloads with their sha256, one after another (0.2 s apart); each outcome with its
    start and end times. A download cut by a tun worker crash gets no RST (the NAT entry died with the
    worker, and a receiving client sends nothing that would reach the new one), so a stall of 2 s ends it
    instead of curl's --max-time."""
    Stop.install()
    expected = open("/tmp/sluice-lab-www/100m.sha256").read().strip()
    downloads = []
    started = mono()
    while Stop.running(started):
        t0 = mono()
        p = subprocess.Popen(["curl", "-sS", "--connect-timeout", "3", "--max-time", "30",
                              "--speed-limit", "1000", "--speed-time", "2", "-o", "-",
                              "http://%s/100m.bin" % HTTP_HOST], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        h = hashlib.sha256()
        size = 0
        while True:
            chunk = p.stdout.read(1 << 20)
            if not chunk:
                break
            size += len(chunk)
            h.update(chunk)
        err = p.stderr.read().decode(errors="replace").strip()
        code = p.wait()
        ok = code == 0 and h.hexdigest() == expected
        downloads.append({"start": t0, "end": mono(), "ok": ok, "bytes": size,
                          "why": "" if ok else (err or "checksum mismatch (%d bytes)" % size)})
        if not Stop.requested:
            time.sleep(0.2)
    json.dump({"downloads": downloads}, open(out, "w"))


# ---------------------------------------------------------------- orchestrator

def percentile(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100 * (len(v) - 1)))))
    return v[k]


def dist(values, unit="ms", scale=1000):
    if not values:
        return "none"
    return "min %.0f, median %.0f, p95 %.0f, max %.0f %s (n=%d)" % (
        min(values) * scale, percentile(values, 50) * scale, percentile(values, 95) * scale, max(values) * scale,
        unit, len(values))


class Run:
    def __init__(self, bin_dir, lab, work):
        self.bin, self.lab, self.work = bin_dir, lab, work
        self.kills = int(os.environ.get("KILLS", "50"))
        self.stops = int(os.environ.get("STOPS", "2"))
        self.early = int(os.environ.get("EARLY", "5"))
        self.reload_rounds = int(os.environ.get("RELOADS", "6"))
        self.deadline = mono() + float(os.environ.get("CHAOS_SECONDS", "420"))
        self.seed = int(os.environ.get("SEED", str(random.randrange(1 << 30))))
        self.rng = random.Random(self.seed)
        self.config_path = os.path.join(work, "config.yaml")
        self.run_dir = os.path.join(work, "run")
        self.state_dir = os.path.join(work, "state")
        self.log_path = os.path.join(work, "sluiced.log")
        self.pids_path = os.path.join(work, "pids")
        self.checks = []  # (name, ok, detail)
        self.outages = []  # (kind, start, end): a worker was down (killed/stopped until ready again)
        self.figures = {}
        self.blocked = "blocked-a.test"  # the name the current good config rejects
        self.good_generation = 1
        self.route_duplicates = []
        self.probe_seq = 0
        self.wireguard = ""
        self.link = None
        if os.environ.get("KEEPALIVE", "1") == "1" and os.access("/usr/bin/wireguard-go", os.X_OK):
            # /run/wireguard/NAME.sock is the host's: the link's name carries the lab's.
            self.link = ("wg" + lab)[:15]
            key = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout.strip()
            peer = subprocess.run(["wg", "pubkey"], input=subprocess.run(["wg", "genkey"], capture_output=True, text=True,
                                  check=True).stdout, capture_output=True, text=True, check=True).stdout.strip()
            self.wireguard = WIREGUARD.replace("@LINK@", self.link).replace("@KEY@", key).replace("@PEER@", peer)
        self.wg_pids = set()
        self.link_problems = []
        self.fd_baseline = {}  # kind -> descriptors other than sockets and pipes of its first successor
        self.fd_transients = []
        self.early_pids = {}  # kind -> successors killed during their start

    # -- plumbing

    def ns(self, role):
        return "%s-%s" % (self.lab, role)

    def remember_pid(self, pid):
        with open(self.pids_path, "a") as f:
            f.write("%d\n" % pid)

    def spawn_in(self, role, args, **kw):
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(role)] + args, **kw)
        self.remember_pid(p.pid)
        return p

    def status(self):
        r = subprocess.run([self.bin + "/sluiced", "status", "--runtime-dir", self.run_dir, "--json"],
                           capture_output=True, timeout=10)
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)

    def worker(self, status, kind):
        return next(w for w in status["workers"] if w["name"] == kind)

    def check(self, name, ok, detail):
        self.checks.append((name, bool(ok), detail))

    def routing(self):
        out = {}
        for what in (["-4", "rule"], ["-6", "rule"], ["-4", "route", "show", "table", "all"], ["-6", "route", "show", "table", "all"]):
            r = subprocess.run(["ip", "-n", self.ns("router")] + what, capture_output=True, text=True)
            out[" ".join(what)] = r.stdout.splitlines()
        return out

    def note_duplicates(self, when):
        for what, lines in self.routing().items():
            seen = set()
            for line in lines:
                if line in seen:
                    self.route_duplicates.append("%s: ip %s: %s" % (when, what, line))
                seen.add(line)

    def note_link(self, when):
        """The WireGuard link as the keepalive worker reports it (with each heartbeat, so a new worker's
        report can take a second): up, and the same wireguard-go throughout (a new worker adopts the
        running one; it is not started again)."""
        end, links = mono() + 3, []
        while mono() < end:
            s = self.status() or {}
            links = [l for l in s.get("links", []) if l["name"] == self.link]
            if links and links[0]["up"] and links[0].get("pid"):
                pid = links[0]["pid"]
                if pid not in self.wg_pids:
                    self.wg_pids.add(pid)
                    self.remember_pid(pid)  # ended by chaos.sh if sluiced leaves it behind
                return
            time.sleep(0.05)
        self.link_problems.append("%s: link %s" % (when, "not reported" if not links else "down"))

    def wireguard_go_pids(self):
        """wireguard-go processes for our link (by command line: `wireguard-go LINK`)."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    argv = open("/proc/%s/cmdline" % entry, "rb").read().split(b"\0")
                except OSError:
                    continue
                if len(argv) >= 2 and argv[0].endswith(b"wireguard-go") and argv[1].decode(errors="replace") == self.link:
                    found.append(int(entry))
        return found

    def successor_fds(self, kind, pid, entry):
        """A fresh worker's descriptors other than sockets and pipes, which come and go with connections (a
        spliced relay holds two pipes). A worker may hold a file or directory for a moment (the keepalive
        worker reads /proc to find the wireguard-go it adopts), so up to five readings 50 ms apart are taken
        until one matches the first successor's count; what a leak holds stays in every reading."""
        first = self.fd_baseline.get(kind)
        transient = None
        least = None
        for attempt in range(5):
            try:
                targets = self.fd_targets(pid)
            except OSError:
                return
            other = [t for t in targets if "socket:" not in t and "pipe:" not in t]
            if least is None or len(other) < least[1]:
                least = (len(targets), len(other))
            if first is not None and len(other) == first:
                break
            if first is not None:
                transient = other
            time.sleep(0.05)
        entry["fds"], entry["fds_not_sockets"] = least
        self.fd_baseline.setdefault(kind, least[1])  # the first successor: the least of five readings
        other = least[1]
        if transient is not None:
            self.fd_transients.append("%s pid %d: %s%s" % (kind, pid, ", ".join(transient),
                                                            "" if other == first else " (stayed)"))

    def fd_targets(self, pid):
        out = []
        for fd in sorted(os.listdir("/proc/%d/fd" % pid), key=int):
            try:
                out.append("%s -> %s" % (fd, os.readlink("/proc/%d/fd/%s" % (pid, fd))))
            except OSError:
                pass
        return out

    def proc_figures(self, pid):
        fds = len(os.listdir("/proc/%d/fd" % pid))
        rss = next(int(l.split()[1]) for l in open("/proc/%d/status" % pid) if l.startswith("VmRSS:"))
        return fds, rss

    def write_config(self, variant):
        """`good` rejects self.blocked; `syntax` and `semantic` are refused by validation."""
        body = CONFIG.replace("@BLOCKED@", self.blocked).replace("@WIREGUARD@", self.wireguard)
        if variant == "syntax":
            body = body.replace("rules:\n", "rules: [\n")  # an unclosed flow sequence
        elif variant == "semantic":
            body = body.replace("  - MATCH,DIRECT", "  - MATCH,no-such-proxy")
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(body)
        os.rename(tmp, self.config_path)  # sluiced never reads half a file

    def wait_ready(self, kind, old_pid, limit):
        """Polls status until `kind` runs under a pid other than old_pid and is ready; (time, pid, status)."""
        end = mono() + limit
        while mono() < end:
            s = self.status()
            if s:
                w = self.worker(s, kind)
                if w.get("pid") and w.get("pid") != old_pid and w["state"] == "ready":
                    return mono(), w.get("pid"), s
            time.sleep(0.02)
        return None, None, None

    def said_ready(self):
        """Worker pids that said ready, from sluiced's log ("started sluice-tun (pid N)", then "sluice-tun ready:")."""
        import re
        current, ready = {}, set()
        for line in open(self.log_path, errors="replace"):
            m = re.search(r"sluiced info: started sluice-(\w+) \(pid (\d+)\)", line)
            if m:
                current[m.group(1)] = int(m.group(2))
                continue
            m = re.search(r"sluiced info: sluice-(\w+) ready:", line)
            if m and m.group(1) in current:
                ready.add(current[m.group(1)])
        return ready

    def is_worker(self, pid, kind):
        """Whether pid is a child of sluiced running `kind`'s executable (comm is cut to 15 characters)."""
        try:
            stat = open("/proc/%d/stat" % pid).read()
        except OSError:
            return False
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        return ppid == self.sluiced.pid and comm == WORKER_EXECUTABLES[kind][:15]

    def gone(self, pid, limit=5.0):
        end = mono() + limit
        while mono() < end:
            try:
                state = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0]
            except (FileNotFoundError, ProcessLookupError):
                return True
            if state in ("Z", "X"):
                return True
            time.sleep(0.002)
        return False

    def agent_ask(self, line, timeout):
        self.agent.stdin.write(line + "\n")
        self.agent.stdin.flush()
        return json.loads(self.agent.stdout.readline())

    # -- actions

    def disrupt(self, kind, how):
        """SIGKILL or SIGSTOP one worker, then measure: until its successor is ready, until new
        connections through the TUN work again."""
        s = self.status()
        w = self.worker(s, kind)
        pid = w.get("pid")
        if not pid or w["state"] != "ready":
            t, pid, s = self.wait_ready(kind, None, 10)
            if not pid:
                self.check("%s worker running before %s" % (kind, how), False, "not ready within 10 s")
                return
        old_fake = self.rng.choice(list(self.first_fakes.values())) if self.first_fakes else "-"
        t0 = mono()
        if how == "early":
            # Kill it, then kill its successor too, 0-20 ms after it has exec'd: in the middle of its start
            # (handshake, configuration, TUN attach, routes, adoption), which a kill of a ready worker never hits.
            before = set(os.listdir("/proc"))
            os.kill(pid, signal.SIGKILL)
            successor, end = None, mono() + 5
            while successor is None and mono() < end:
                for entry in set(os.listdir("/proc")) - before:
                    if entry.isdigit() and self.is_worker(int(entry), kind):
                        successor = int(entry)
                        break
                else:
                    time.sleep(0.001)
            if successor is None:
                self.check("early kill: %s successor seen" % kind, False, "no successor within 5 s")
                return
            delay = self.rng.uniform(0, 0.02)
            time.sleep(delay)
            t0 = mono()
            os.kill(successor, signal.SIGKILL)
            self.figures.setdefault("earlydelay_%s" % kind, []).append(delay)
            self.early_pids.setdefault(kind, []).append(successor)
            pid = successor
        else:
            os.kill(pid, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
        if how != "stop" and not self.gone(pid):
            self.check("killed %s worker gone" % kind, False, "pid %d still there 5 s after SIGKILL" % pid)
        self.probe_seq += 1
        # The probe starts once the old worker can no longer answer: its first success is a new connection
        # served by the successor.
        if how != "stop":
            self.agent.stdin.write("probe %d 10 %s\n" % (self.probe_seq, old_fake))
            self.agent.stdin.flush()
        t_ready, new_pid, s = self.wait_ready(kind, pid, 20 if how == "stop" else 10)
        if how == "stop":
            if t_ready is not None:
                self.figures.setdefault("stop_detect_%s" % kind, []).append(t_ready - t0)
            left = self.gone(pid, 2.0)
            if not left:
                os.kill(pid, signal.SIGCONT)
            self.check("SIGSTOP of %s worker: restarted, no stopped process left" % kind, t_ready is not None and left,
                       "pid %d %s, successor %s after %.1f s" % (
                           pid, "gone" if left else "STILL THERE (sent SIGCONT)", new_pid,
                           (t_ready - t0) if t_ready else float("nan")))
            self.agent.stdin.write("probe %d 10 %s\n" % (self.probe_seq, old_fake))
            self.agent.stdin.flush()
        answer = json.loads(self.agent.stdout.readline())
        self.outages.append((kind, t0, t_ready or mono()))
        rec = self.figures.setdefault("%s_%s" % (how, kind), [])
        entry = {"t0": t0, "ready": t_ready, "conn": answer.get("t"), "ok": answer["ok"], "pid": new_pid,
                 "failed_at": answer.get("failed_at")}
        if new_pid:
            self.successor_fds(kind, new_pid, entry)
        rec.append(entry)
        if kind in ("tun", "keepalive"):
            self.note_duplicates("after %s of %s worker pid %d" % (how, kind, pid))
        if self.link:
            self.note_link("after %s of %s worker" % (how, kind))

    def reload(self, variant):
        pid = self.sluiced.pid
        before = self.status()
        refused_before = open(self.log_path, errors="replace").read().count("reload refused:")
        if variant == "good":
            self.blocked = "blocked-b.test" if self.blocked == "blocked-a.test" else "blocked-a.test"
        self.write_config(variant)
        os.kill(pid, signal.SIGHUP)
        rec = self.figures.setdefault("reload_" + variant, [])
        if variant == "good":
            self.good_generation += 1
            end, applied, behaves = mono() + 5, None, None
            while mono() < end and applied is None:
                s = self.status()
                if s and s["generation"] == self.good_generation:
                    applied = mono()
                time.sleep(0.02)
            # Behaviour: the newly blocked name is refused, the other one served (the tun worker may apply
            # the rules a moment after sluiced accepted the file).
            other = "blocked-b.test" if self.blocked == "blocked-a.test" else "blocked-a.test"
            while mono() < end:
                a = self.agent_ask("name %s" % self.blocked, 5)["outcome"]
                b = self.agent_ask("name %s" % other, 5)["outcome"]
                if a == "refused" and b == "ok":
                    behaves = mono()
                    break
                time.sleep(0.05)
            rec.append(applied is not None and behaves is not None)
            self.check("good reload %d applied" % len(rec), applied and behaves,
                       "generation %d, %s refused and %s served" % (self.good_generation, self.blocked, other)
                       if behaves else "generation %s, behaviour not switched within 5 s" % (
                           self.status() or {}).get("generation"))
        else:
            end, refused = mono() + 3, False
            while mono() < end and not refused:
                refused = open(self.log_path, errors="replace").read().count("reload refused:") > refused_before
                time.sleep(0.02)
            s = self.status()
            same = s is not None and s["pid"] == pid and s["generation"] == before["generation"]
            a = self.agent_ask("name %s" % self.blocked, 5)["outcome"]
            rec.append(refused and same and a == "refused")
            self.check("bad (%s) reload %d refused, old config serving" % (variant, len(rec)), rec[-1],
                       "logged: %s, generation %s -> %s, %s: %s" % (refused, before["generation"],
                                                                     s and s["generation"], self.blocked, a))
            self.write_config("good")  # the file on disk is good again; nothing to reload

    # -- the run

    def start(self):
        os.makedirs(self.work, exist_ok=True)
        # The lab's veths come up with duplicate address detection on for their IPv6 link-local
        # addresses (accept_dad is set in the namespace after they were made): their local routes appear
        # when DAD ends, 1-2 s later. The snapshot waits for that, then for two readings 0.5 s apart to agree.
        for _ in range(100):
            tentative = subprocess.run(["ip", "-n", self.ns("router"), "-6", "addr", "show", "tentative"],
                                       capture_output=True, text=True).stdout
            if not tentative.strip():
                break
            time.sleep(0.1)
        self.routing_before = self.routing()
        for _ in range(20):
            time.sleep(0.5)
            again = self.routing()
            if again == self.routing_before:
                break
            self.routing_before = again
        self.write_config("good")
        log = open(self.log_path, "w")
        self.sluiced = self.spawn_in("router", [self.bin + "/sluiced", "run", "-c", self.config_path, "--runtime-dir",
                                                self.run_dir, "--state-dir", self.state_dir],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        # ip netns exec execs the command: the Popen pid is sluiced's own.
        end = mono() + 30
        s = None
        while mono() < end:
            s = self.status()
            if s and all(w["state"] == "ready" for w in s["workers"] if w["enabled"]):
                break
            time.sleep(0.1)
        if not s or s["pid"] != self.sluiced.pid:
            raise SystemExit("chaos: sluiced did not come up ready (log: %s)" % self.log_path)
        self.enabled = [w["name"] for w in s["workers"] if w["enabled"]]
        if self.link:
            self.note_link("at start")
        self.agent = self.spawn_in("client", ["python3", __file__, "agent"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)
        self.load = {}
        for kind in ("udp-stream", "dns-loop", "http-loop"):
            self.load[kind] = self.spawn_in("client", ["python3", __file__, kind, os.path.join(self.work, kind + ".json")])

    def first_fake_map(self):
        """Addresses the dns loop has been answered so far (read from the store through the agent: a
        few names resolved now stand for 'answered before a crash')."""
        fakes = {}
        for name in NAMES[:20]:
            a = self.agent_ask("resolve %s %s" % (name, LISTEN_DNS), 5)["fake"]
            if a:
                fakes[name] = a
        return fakes

    def main(self):
        t_begin = mono()
        self.start()
        print("chaos: sluiced pid %d ready; workers %s; seed %d" % (self.sluiced.pid, ", ".join(self.enabled), self.seed),
              flush=True)
        self.first_fakes = self.first_fake_map()
        # Warm-up: load for a few seconds, each worker killed twice, a good and a bad reload, so that
        # one-time allocations (first restart, first reload, first client) are behind us.
        time.sleep(5)
        for kind in self.enabled:
            for _ in range(2):
                self.disrupt(kind, "kill")
                time.sleep(0.5)
        self.reload("good")
        self.reload("syntax")
        self.figures = {}
        # Only what failed in the warm-up is worth a line of its own.
        self.checks = [("warm-up: " + name, ok, detail) for name, ok, detail in self.checks if not ok]
        time.sleep(2)
        self.warm = self.proc_figures(self.sluiced.pid)
        self.warm_fds = self.fd_targets(self.sluiced.pid)
        print("chaos: warmed up; sluiced fds %d, RSS %d KiB; chaos begins" % self.warm, flush=True)
        t_chaos = mono()

        actions = [("kill", k) for k in self.enabled for _ in range(self.kills)]
        actions += [("early", k) for k in self.enabled for _ in range(self.early)]
        actions += [("stop", k) for k in self.enabled for _ in range(self.stops)]
        actions += [("reload", v) for _ in range(self.reload_rounds) for v in ("syntax", "semantic", "good")]
        self.rng.shuffle(actions)
        done = 0
        for how, what in actions:
            if mono() > self.deadline:
                break
            time.sleep(self.rng.uniform(0.3, 1.5))
            if how == "reload":
                self.reload(what)
            else:
                self.disrupt(what, how)
            done += 1
            if done % 25 == 0:
                print("chaos: %d/%d actions, %.0f s" % (done, len(actions), mono() - t_chaos), flush=True)
        self.check("every planned action ran within CHAOS_SECONDS", done == len(actions),
                   "%d of %d actions in %.0f s" % (done, len(actions), mono() - t_chaos))
        return self.finish(t_begin, mono() - t_chaos)

    def finish(self, t_begin, chaos_seconds):
        # Load stops; the generators run their final passes and write summaries.
        for p in self.load.values():
            p.send_signal(signal.SIGTERM)
        for p in self.load.values():
            try:
                p.wait(timeout=60)

            except subprocess.TimeoutExpired:
                p.kill()
        results = {k: json.load(open(os.path.join(self.work, k + ".json"))) for k in self.load}
        final_fakes = self.first_fake_map()
        self.agent.stdin.close()
        self.agent.wait(timeout=10)
        # Measured before asking for status: a status client's socket in sluiced is gone only once
        # sluiced has seen it close, a moment after the CLI exits.
        time.sleep(2)
        end_figures = self.proc_figures(self.sluiced.pid)
        end_fds = self.fd_targets(self.sluiced.pid)
        s = self.status()
        stopped_left = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = open("/proc/%s/stat" % entry).read()
                except OSError:
                    continue
                comm, state = stat[stat.index("(") + 1:stat.rindex(")")], stat.rsplit(")", 1)[1].split()[0]
                if comm.startswith("sluice") and state in ("T", "t"):
                    stopped_left.append("%s %s" % (entry, comm))
        self.note_duplicates("end of chaos")

        # Stop sluiced; the routing must be exactly as before it started.
        self.sluiced.send_signal(signal.SIGTERM)
        try:
            code = self.sluiced.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.sluiced.kill()
            code = "did not stop within 20 s"
        time.sleep(0.2)
        routing_after = self.routing()
        for label, snapshot in (("before", self.routing_before), ("after", routing_after)):
            with open(os.path.join(self.work, "routing.%s" % label), "w") as f:
                for what, lines in snapshot.items():
                    f.write("".join("ip %s: %s\n" % (what, l) for l in lines))
        route_diff = []
        for what in self.routing_before:
            before, after = set(self.routing_before[what]), set(routing_after[what])
            route_diff += ["-%s: %s" % (what, l) for l in sorted(before - after)]
            route_diff += ["+%s: %s" % (what, l) for l in sorted(after - before)]
        tun_left = subprocess.run(["ip", "-n", self.ns("router"), "link", "show", "sluice0"],
                                  capture_output=True).returncode == 0
        if self.link:
            wg_left = self.wireguard_go_pids()
            link_left = subprocess.run(["ip", "-n", self.ns("router"), "link", "show", self.link],
                                       capture_output=True).returncode == 0

        # ---- figures
        print()
        print("== figures (seed %d, %.0f s of chaos, %.0f s in all)" % (self.seed, chaos_seconds, mono() - t_begin))
        conn_after_kill, conn_after_ready, restart = {}, {}, {}
        failed_probes = []
        successor_fds = {}
        ready_pids = self.said_ready()
        for key, entries in sorted(self.figures.items()):
            if not key.startswith(("kill_", "stop_", "early_")) or key.startswith("stop_detect"):
                continue
            how, kind = key.split("_", 1)
            for e in entries:
                if e["ready"] is not None:
                    restart.setdefault(key, []).append(e["ready"] - e["t0"])
                if e["ok"]:
                    conn_after_kill.setdefault(key, []).append(e["conn"] - e["t0"])
                    if e["ready"] is not None:
                        conn_after_ready.setdefault(key, []).append(max(0.0, e["conn"] - e["ready"]))
                else:
                    failed_probes.append("%s: probe failed (steps that failed: %s)" % (key, e["failed_at"]))
        for key in sorted(k for k in self.figures if k.startswith(("kill_", "stop_", "early_")) and not k.startswith("stop_detect")):
            how, kind = key.split("_", 1)
            entries = self.figures[key]
            print("%s worker, %s x%d:" % (kind, {"kill": "SIGKILL", "stop": "SIGSTOP",
                                                 "early": "SIGKILL, then its successor 0-20 ms after exec"}[how],
                                          len(entries)))
            if how == "early":
                killed = self.early_pids.get(kind, [])
                print("  successors killed before they said ready: %d of %d"
                      % (sum(1 for p in killed if p not in ready_pids), len(killed)))
            if how == "stop":
                print("  SIGSTOP -> successor ready (hang detection + restart): %s" % dist(self.figures.get("stop_detect_" + kind, []), "s", 1))
            else:
                print("  %s -> successor ready (status): %s" % ("kill" if how == "kill" else "2nd kill",
                                                             dist(restart.get(key, []))))
            print("  %s -> first new connection through the TUN: %s" % ({"early": "2nd kill"}.get(how, how),
                                                                      dist(conn_after_kill.get(key, []))))
            print("  successor ready -> first new connection:       %s" % dist(conn_after_ready.get(key, [])))
            fds = [e["fds"] for e in entries if "fds" in e]
            if fds:
                other = [e["fds_not_sockets"] for e in entries if "fds_not_sockets" in e]
                print("  successor's open fds when ready: %d-%d (other than sockets and pipes: %d-%d)"
                      % (min(fds), max(fds), min(other), max(other)))
                successor_fds.setdefault(kind, []).extend(other)
        http = results["http-loop"]["downloads"]
        ok = [d for d in http if d["ok"]]
        failed = [d for d in http if not d["ok"]]
        tun_outages = [(a, b) for k, a, b in self.outages if k == "tun"]
        unexplained = [d for d in failed if not any(a <= d["end"] and d["start"] <= b + 0.5 for a, b in tun_outages)]
        print("downloads (100 MiB + sha256): %d ok, %d failed (%d during a tun worker outage, %d otherwise); %.1f GiB"
              % (len(ok), len(failed), len(failed) - len(unexplained), len(unexplained),
                 sum(d["bytes"] for d in http) / 2 ** 30))
        udp = results["udp-stream"]
        print("UDP echo stream: %d sent, %d answered (%.1f%% lost, during tun outages); gaps over 200 ms: %d; "
              "after the chaos %d/%d answered" % (udp["sent"], udp["received"],
                                                  100.0 * (udp["sent"] - udp["received"]) / max(1, udp["sent"]),
                                                  len(udp["gaps"]), udp["final_received"], udp["final_sent"]))
        bad_gaps = []
        for a, b in udp["gaps"]:
            cover = [o for o in self.outages if o[1] <= (b if b is not None else mono()) and a <= o[2] + 1.0]
            if b is None or not cover or b - max(o[2] for o in cover) > 1.0:
                bad_gaps.append((a, b, [o[0] for o in cover]))
        dns = results["dns-loop"]
        print("DNS loop (n1..n200.test, dns.listen and hijack alternately): %d queries, %d answered; %d names mapped;"
              " %d answers rechecked after the chaos; mismatches %d" % (
                  dns["queries"], dns["answered"], dns["names"], dns["final_checked"], len(dns["mismatches"])))
        fake_changed = [n for n in self.first_fakes if final_fakes.get(n) != self.first_fakes[n]]
        dns_crashes = [a for k, a, _ in self.outages if k == "dns"]
        pairs = sum(1 for t in dns["first_at"].values() for c in dns_crashes if t < c)
        early = sum(1 for t in dns["first_at"].values() if dns_crashes and t < min(dns_crashes))
        print("fake-IP mappings: %d names answered before the first dns worker crash; %d (name, later crash) pairs;"
              " every name asked again after the last crash" % (early, pairs))
        print("sampled early mappings (n1..n20.test) asked again at the end: %d, changed %d"
              % (len(self.first_fakes), len(fake_changed)))
        rg, rs, rm = (self.figures.get("reload_" + v, []) for v in ("good", "syntax", "semantic"))
        print("reloads: good %d (%d applied), bad syntax %d (%d refused), bad semantic %d (%d refused); generation %s"
              % (len(rg), sum(rg), len(rs), sum(rs), len(rm), sum(rm), s and s["generation"]))
        if self.link:
            print("WireGuard link %s (peer never answers): wireguard-go pids seen %s" % (self.link, sorted(self.wg_pids)))
        print("sluiced pid %d: fds %d -> %d, RSS %d -> %d KiB (after warm-up -> end)"
              % (self.sluiced.pid, self.warm[0], end_figures[0], self.warm[1], end_figures[1]))

        # ---- checks
        self.check("supervisor never exited", s is not None and s["pid"] == self.sluiced.pid and code == 0,
                   "pid %d answered status at the end; exit status after SIGTERM: %s" % (self.sluiced.pid, code))
        self.check("all workers ready at the end", s is not None and all(w["state"] == "ready" for w in s["workers"] if w["enabled"]),
                   s and s["summary"])
        all_conn = [v for vs in conn_after_kill.values() for v in vs]
        all_ready = [v for vs in conn_after_ready.values() for v in vs]
        kill_conn = [v for k, vs in conn_after_kill.items() if k.startswith(("kill_", "early_")) for v in vs]
        self.check("every probe after a restart succeeded", not failed_probes, "; ".join(failed_probes[:5]) or
                   "%d probes" % len(all_conn))
        self.check("new connections within 1 s of the successor being ready", all_ready and max(all_ready) <= 1.0,
                   "max %.0f ms" % (max(all_ready) * 1000) if all_ready else "no data")
        self.check("new connections within 1 s of a SIGKILL", kill_conn and max(kill_conn) <= 1.0,
                   "max %.0f ms" % (max(kill_conn) * 1000) if kill_conn else "no data")
        self.check("downloads fail only during a tun worker outage", not unexplained and ok,
                   "; ".join("%.1f-%.1f: %s" % (d["start"], d["end"], d["why"]) for d in unexplained[:3])
                   or "%d ok" % len(ok))
        self.check("UDP answers resume within 1 s of every tun restart, and nothing lost after the chaos",
                   not bad_gaps and udp["final_received"] == udp["final_sent"],
                   "%d gaps not explained; final %d/%d" % (len(bad_gaps), udp["final_received"], udp["final_sent"]))
        self.check("every fake address keeps its name across dns worker crashes",
                   not dns["mismatches"] and not fake_changed and dns["final_checked"] >= 2 * len(NAMES),
                   "; ".join(json.dumps(m) for m in dns["mismatches"][:3]) or
                   "%d names, %d final answers, %d early mappings" % (dns["names"], dns["final_checked"], len(self.first_fakes)))
        self.check("sluiced's open fds unchanged (after warm-up vs end)", end_figures[0] == self.warm[0],
                   "%d -> %d" % (self.warm[0], end_figures[0]) + ("" if end_figures[0] == self.warm[0] else
                   "; after warm-up: %s; at the end: %s" % (", ".join(self.warm_fds), ", ".join(end_fds))))
        rss_bound = max(2048, self.warm[1] // 20)
        self.check("sluiced's RSS within max(2 MiB, 5%) of after warm-up", end_figures[1] - self.warm[1] <= rss_bound,
                   "%d -> %d KiB (bound +%d KiB)" % (self.warm[1], end_figures[1], rss_bound))
        self.check("every successor holds as many descriptors other than sockets and pipes (none inherited or piling up)",
                   all(min(v) == max(v) for v in successor_fds.values()),
                   ", ".join("%s %s" % (k, sorted(set(v))) for k, v in sorted(successor_fds.items()))
                   + ("; held for a moment: %s" % "; ".join(self.fd_transients[:3]) if self.fd_transients else ""))
        self.check("no stopped sluice process left", not stopped_left, ", ".join(stopped_left) or "none")
        self.check("no duplicate ip rule / ip route lines during the chaos", not self.route_duplicates,
                   "; ".join(self.route_duplicates[:3]) or "checked after every tun and keepalive restart")
        self.check("ip rule / ip route restored exactly after stop, TUN device removed", not route_diff and not tun_left,
                   "; ".join(route_diff[:4]) + ("; sluice0 still there" if tun_left else "") or "identical")
        if self.link:
            self.check("WireGuard link up after every restart; one wireguard-go throughout (adopted, not restarted)",
                       not self.link_problems and len(self.wg_pids) == 1,
                       "; ".join(self.link_problems[:3]) or "wireguard-go pids seen: %s" % sorted(self.wg_pids))
            self.check("after stop: link %s removed, no wireguard-go left" % self.link, not wg_left and not link_left,
                       "left: %s%s" % (wg_left, ", link still there" if link_left else "") if wg_left or link_left
                       else "none")
        print()
        failed_checks = 0
        for name, ok_, detail in self.checks:
            print("%s  %s (%s)" % ("PASS" if ok_ else "FAIL", name, detail))
            failed_checks += not ok_
        json.dump({"seed": self.seed, "figures": self.figures, "checks": self.checks, "loads": results},
                  open(os.path.join(self.work, "figures.json"), "w"), default=str)
        print()
        print("chaos: %s (%d of %d checks held)" % ("PASS" if failed_checks == 0 else "FAIL",
                                                    len(self.checks) - failed_checks, len(self.checks)))
        return failed_checks == 0


CONFIG = """\
# Written by Scripts/chaos.py. The restart policy is relaxed on purpose: the chaos kills each worker
# every few seconds, and with the defaults (10 restarts in 60 s, backoff reset after 30 s up) sluiced
# would rightly give up and exit; here the recovery is measured, not the give-up (RestartScheduleTests).
log-level: info
supervisor:
  restart:
    max-restarts: 10000
    window: 60s
    stable-after: 250ms
tun:
  enable: true
  device: sluice0
  auto-route: true
  auto-detect-interface: true
  dns-hijack: [any:53]
dns:
  enable: true
  listen: 10.77.1.1:53
  enhanced-mode: fake-ip
  nameserver: [10.77.200.2]
@WIREGUARD@rules:
  - DOMAIN-SUFFIX,@BLOCKED@,REJECT
  - NETWORK,UDP,DIRECT
  - MATCH,DIRECT
"""

# The keepalive worker runs only with a WireGuard link. One whose peer never answers is enough for the
# chaos (wireguard-go on a persistent TUN, adopted by each new worker); it costs two `wg genkey`s.
WIREGUARD = """\
keepalive:
  interval: 1s
wireguard:
  - name: @LINK@
    private-key: "@KEY@"
    address: [10.203.0.1/24]
    listen-port: 51931
    peers:
      - public-key: "@PEER@"
        endpoint: 10.77.200.2:51931
        allowed-ips: [10.203.0.2/32]
        persistent-keepalive: 5
"""


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "run":
        sys.exit(0 if Run(*args).main() else 1)
    {"agent": agent, "udp-stream": udp_stream, "dns-loop": dns_loop, "http-loop": http_loop}[command](*args)
