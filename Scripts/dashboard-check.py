#!/usr/bin/env python3
"""Headless Chromium loads a Clash dashboard and must show the proxies (stdlib only).

    dashboard-check.py PAGE OUTDIR [EXPECTED NAMES...] [--select MEMBER] [--timeout S] [--chromium CMD...]

PAGE is the dashboard's URL with the controller's address and secret in it, the way that dashboard
takes them (zashboard and yacd: ?hostname=H&port=P&secret=S; the page's #/proxies route is opened).
Chromium is driven over its DevTools pipe (--remote-debugging-pipe: no port, no websocket library):

  1. open PAGE in a 1280x900 window; wait until the page's text shows the first EXPECTED name (the
     dashboard reached the controller and listed the group);
  2. open the proxy groups (zashboard shows them collapsed: a click on each group's header);
  3. wait until every EXPECTED name is on the page as a word of its own;
  4. with --select MEMBER: click MEMBER in the first EXPECTED name's group card, as a person would;
     GET /proxies/GROUP (from the page) must then answer now == MEMBER;
  5. save OUTDIR/dashboard.png (screenshot), dashboard.html (the DOM), dashboard.txt (the page's
     text), requests.txt (every HTTP request and WebSocket the page made, with the answer's status)
     and console.txt (the page's console and log lines);
  6. check the PNG: 1280x900, decodes, and has more than 50 distinct colours (not a blank page).

Each check prints PASS/FAIL; exit 0 only when all held. Everything is bounded by --timeout (60 s).
The Chromium command comes after --chromium (Scripts/dashboard-check.sh passes
`ip netns exec NS chromium` to keep it in a namespace that reaches nothing but its own loopback).
"""

import fcntl
import json
import os
import re
import select
import struct
import subprocess
import sys
import tempfile
import time
import zlib

WIDTH, HEIGHT = 1280, 900
failures = []

# zashboard keeps groups collapsed until their header is clicked; yacd's group headers toggle the same
# way. Clicking a header that is already open would close it, so only closed ones are clicked.
EXPAND_JS = r"""
(() => {
  let n = 0;
  for (const card of document.querySelectorAll('[data-group-name]')) {
    const box = card.querySelector('.collapse-motion');
    const head = card.querySelector('.collapse-motion-header');
    if (head && box && !box.classList.contains('collapse-open')) { head.click(); n++; }
  }
  return n;
})()
"""


def check(ok, what):
    print(("PASS " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)
    return ok


def high(fd):
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


class DevTools:
    """Chromium's DevTools protocol over --remote-debugging-pipe: JSON messages ended by NUL."""

    def __init__(self, cmd, deadline):
        self.deadline = deadline
        # Pipe ends moved above fd 9, so that none of them is already fd 3 or 4 in the child.
        to_chrome_r, self.to_chrome, self.from_chrome, from_chrome_w = (
            high(fd) for fd in os.pipe() + os.pipe())
        # The browser reads commands on fd 3 and writes answers on fd 4; bash puts the pipes there.
        wrap = f'exec "$@" 3<&{to_chrome_r} 4>&{from_chrome_w} {to_chrome_r}<&- {from_chrome_w}>&-'
        self.proc = subprocess.Popen(["bash", "-c", wrap, "chromium"] + cmd,
                                     pass_fds=(to_chrome_r, from_chrome_w),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf = b""
        self.next_id = 0
        self.events = []

    def send(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        while True:
            m = self.receive()
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def receive(self, until=None):
        until = until or self.deadline
        while b"\0" not in self.buf:
            left = until - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from Chromium in time")
            r, _, _ = select.select([self.from_chrome], [], [], left)
            if r:
                chunk = os.read(self.from_chrome, 1 << 20)
                if not chunk:
                    raise EOFError("Chromium closed its DevTools pipe (it exited: see its stderr below)")
                self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def pump(self, seconds):
        """Collect events for a while (the page keeps working meanwhile)."""
        until = min(time.monotonic() + seconds, self.deadline)
        try:
            while True:
                self.events.append(self.receive(until))
        except TimeoutError:
            pass

    def close(self):
        try:
            os.write(self.to_chrome, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        err = self.proc.stderr.read().decode("utf-8", "replace")
        return err


def png_colours(data, limit=100000):
    """Width, height and the number of distinct pixel values of an 8-bit RGB(A) PNG (stdlib only)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, w = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                raise ValueError(f"unexpected PNG format depth={depth} colour type={ctype} interlace={interlace}")
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    prev = bytearray(stride)
    seen = set()
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif f == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if len(seen) < limit:
            seen.update(bytes(line[i:i + bpp]) for i in range(0, stride, bpp * 7))  # every 7th pixel
        prev = line
    return w, h, len(seen)


def local_hosts(page):
    """The hosts the page may reach: loopback, the page's host and the controller's (?hostname=)."""
    from urllib.parse import parse_qs, urlsplit
    u = urlsplit(page)
    q = parse_qs(u.query or u.fragment.partition("?")[2])
    hosts = ["localhost", "127.0.0.1", "[::1]", u.hostname or "", q.get("hostname", [""])[0]]
    return [h for i, h in enumerate(hosts) if h and h not in hosts[:i]]


def has_word(text, name):
    return re.search(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])", text) is not None


def main():
    args = sys.argv[1:]
    chromium = ["chromium"]
    if "--chromium" in args:
        i = args.index("--chromium")
        chromium, args = args[i + 1:], args[:i]
    timeout = 60.0
    select = None
    if "--select" in args:
        i = args.index("--select")
        select = args[i + 1]
        del args[i:i + 2]
    if "--timeout" in args:
        i = args.index("--timeout")
        timeout = float(args[i + 1])
        del args[i:i + 2]
    if len(args) < 2:
        sys.exit(__doc__)
    page, outdir, expected = args[0], args[1], args[2:]
    os.makedirs(outdir, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="sluice-chromium-")
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             f"--window-size={WIDTH},{HEIGHT}", f"--user-data-dir={profile}", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--hide-scrollbars",
             # Names resolve to nothing, so calls a dashboard makes to the internet (zashboard asks GitHub for
             # releases) fail at once instead of hanging in a namespace whose default route leads nowhere.
             "--host-resolver-rules=MAP * ~NOTFOUND, " + ", ".join(f"EXCLUDE {h}" for h in local_hosts(page)),
             "about:blank"]
    deadline = time.monotonic() + timeout
    dt = DevTools(chromium + flags, deadline)
    text = ""
    try:
        target = dt.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = dt.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            dt.send(f"{domain}.enable", session=s)
        dt.send("Emulation.setDeviceMetricsOverride",
                {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False}, session=s)
        dt.send("Page.navigate", {"url": page}, session=s)

        def page_text():
            r = dt.send("Runtime.evaluate", {"expression": "document.body ? document.body.innerText : ''",
                                             "returnByValue": True}, session=s)
            return r.get("result", {}).get("value", "") or ""

        first = expected[0] if expected else None
        t0 = time.monotonic()
        while True:
            text = page_text()
            if first is None or has_word(text, first) or time.monotonic() > deadline - 5:
                break
            dt.pump(0.3)
        if first is not None:
            check(has_word(text, first), f"the page shows {first!r} ({time.monotonic() - t0:.1f} s after load)")
        clicked = dt.send("Runtime.evaluate", {"expression": EXPAND_JS, "returnByValue": True},
                          session=s).get("result", {}).get("value")
        print(f"opened {clicked} collapsed proxy group(s)")
        while True:
            dt.pump(0.3)
            text = page_text()
            if all(has_word(text, n) for n in expected) or time.monotonic() > deadline - 5:
                break
        if select and expected:
            choose(dt, s, expected[0], select, page)
        dt.pump(1.0)  # let transitions finish before the screenshot
        text = page_text()
        for n in expected:
            check(has_word(text, n), f"the page lists {n!r}")
        shot = dt.send("Page.captureScreenshot", {"format": "png"}, session=s)["data"]
        html = dt.send("Runtime.evaluate", {"expression": "document.documentElement.outerHTML",
                                            "returnByValue": True}, session=s)["result"]["value"]
        import base64
        png = base64.b64decode(shot)
        with open(os.path.join(outdir, "dashboard.png"), "wb") as f:
            f.write(png)
        with open(os.path.join(outdir, "dashboard.html"), "w") as f:
            f.write(html)
        with open(os.path.join(outdir, "dashboard.txt"), "w") as f:
            f.write(text)
    except (TimeoutError, EOFError, RuntimeError, KeyError) as e:
        check(False, f"driving Chromium: {type(e).__name__}: {e}")
    finally:
        err = dt.close()
        write_logs(dt.events, outdir)
        import shutil
        shutil.rmtree(profile, ignore_errors=True)
    if err.strip() and failures:
        noise = re.compile(r"dbus|Fontconfig|gcm|Floss|viz_main|gpu_init|sandbox", re.I)
        lines = [l for l in err.splitlines() if not noise.search(l)]
        if lines:
            print("chromium's stderr (filtered):\n  " + "\n  ".join(lines[-15:]), file=sys.stderr)

    path = os.path.join(outdir, "dashboard.png")
    if os.path.exists(path):
        with open(path, "rb") as f:
            data = f.read()
        try:
            w, h, colours = png_colours(data)
            check((w, h) == (WIDTH, HEIGHT), f"screenshot is {w}x{h}, {len(data)} bytes")
            check(colours > 50, f"screenshot has {colours} distinct colours (sampled; a blank page has 1)")
        except (ValueError, zlib.error, struct.error) as e:
            check(False, f"screenshot decodes: {e}")
    print(f"outputs in {outdir}: dashboard.png dashboard.html dashboard.txt requests.txt console.txt")
    if failures:
        print(f"dashboard-check: {len(failures)} check(s) failed for {page}:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        sys.exit(1)
    print("dashboard-check: the dashboard loaded and listed " + ", ".join(map(repr, expected)))


CLICK_JS = r"""
((group, member) => {
  const card = document.querySelector(`[data-group-name="${CSS.escape(group)}"]`);
  if (!card) return 'no card for the group';
  for (const el of card.querySelectorAll('*')) {
    if (el.children.length === 0 && el.textContent.trim() === member && el.closest('.collapse-motion-body')) {
      el.click();
      return 'clicked';
    }
  }
  return 'no card for the member';
})"""

NOW_JS = r"""
((group, base, secret) => fetch(`${base}/proxies/${encodeURIComponent(group)}`,
    {headers: {Authorization: `Bearer ${secret}`}}).then(r => r.json()).then(j => j.now))"""


def choose(dt, s, group, member, page):
    """Click MEMBER in GROUP's card, as a person would; the controller must then say GROUP uses it."""
    from urllib.parse import parse_qs, urlsplit
    u = urlsplit(page)
    q = parse_qs(u.query or u.fragment.partition("?")[2])
    base = f"{u.scheme}://{q.get('hostname', [u.hostname])[0]}:{q.get('port', [u.port])[0]}"
    secret = q.get("secret", [""])[0]
    how = dt.send("Runtime.evaluate", {"expression": f"{CLICK_JS}({json.dumps(group)}, {json.dumps(member)})",
                                       "returnByValue": True}, session=s)["result"].get("value")
    if not check(how == "clicked", f"click {member!r} in {group!r}: {how}"):
        return
    now = None
    for _ in range(20):
        dt.pump(0.25)
        now = dt.send("Runtime.evaluate", {
            "expression": f"{NOW_JS}({json.dumps(group)}, {json.dumps(base)}, {json.dumps(secret)})",
            "awaitPromise": True, "returnByValue": True}, session=s)["result"].get("value")
        if now == member:
            break
    check(now == member, f"after the click, GET /proxies/{group} says now={now!r}")


def write_logs(events, outdir):
    """requests.txt: METHOD URL -> status (WebSockets as WS URL -> 101 / error); console.txt."""
    reqs, order, console = {}, [], []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Network.requestWillBeSent":
            r = p["request"]
            rid = p["requestId"]
            if rid not in reqs:
                order.append(rid)
            hdrs = {k.lower(): v for k, v in r.get("headers", {}).items()}
            a = hdrs.get("authorization")
            auth = f" [Authorization: {a.split(' ')[0]} + {len(a.split(' ', 1)[-1])} chars]" if a is not None else ""
            reqs[rid] = [r["method"], r["url"], "-", auth]
        elif m == "Network.responseReceived" and p["requestId"] in reqs:
            reqs[p["requestId"]][2] = str(p["response"]["status"])
        elif m == "Network.loadingFailed" and p["requestId"] in reqs:
            reqs[p["requestId"]][2] = "failed: " + p.get("errorText", "") + (" (CORS)" if p.get("corsErrorStatus") else "")
        elif m == "Network.webSocketCreated":
            order.append(p["requestId"])
            reqs[p["requestId"]] = ["WS", p["url"], "-", ""]
        elif m == "Network.webSocketHandshakeResponseReceived" and p["requestId"] in reqs:
            reqs[p["requestId"]][2] = str(p["response"]["status"])
        elif m == "Network.webSocketFrameError" and p["requestId"] in reqs:
            reqs[p["requestId"]][2] += " frame error: " + p.get("errorMessage", "")
        elif m == "Runtime.consoleAPICalled":
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            console.append(f"console.{p.get('type')}: {args}")
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            console.append(f"exception: {d.get('exception', {}).get('description', d.get('text'))}")
        elif m == "Log.entryAdded":
            en = p["entry"]
            console.append(f"log.{en.get('level')}: {en.get('text')} {en.get('url', '')}")
    with open(os.path.join(outdir, "requests.txt"), "w") as f:
        for rid in order:
            method, url, status, auth = reqs[rid]
            f.write(f"{method} {url} -> {status}{auth}\n")
    with open(os.path.join(outdir, "console.txt"), "w") as f:
        f.write("\n".join(console) + ("\n" if console else ""))


if __name__ == "__main__":
    main()
