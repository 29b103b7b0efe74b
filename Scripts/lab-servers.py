#!/usr/bin/env python3
"""Servers and clients for sluice's namespace lab (Scripts/lab.sh), stdlib only.

  lab-servers.py http DIR PORT          threaded HTTP/1.1 file server on every address (v4+v6)
  lab-servers.py udp-echo PORT [ADDR...] UDP echo on each address (default: the lab's three
                                        service addresses); each answer is
                                        "<seen source ip> <seen source port> " + the payload
  lab-servers.py udp-client HOST PORT COUNT [SIZE]
                                        sends COUNT datagrams (bounded: 60 s), prints
                                        "sent N received M lost L"
  lab-servers.py fullcone HOST1 HOST2 PORT
                                        one socket talks to two servers; prints the source
                                        ports each saw: "HOST1 PORT1 HOST2 PORT2"
  lab-servers.py dns-query SERVER NAME [tcp]
                                        asks SERVER:53 for NAME's A records (UDP, or TCP);
                                        prints the addresses, or "no answer"
  lab-servers.py syn-flood DEST COUNT SECONDS SOURCES [RATE]
                                        COUNT raw TCP SYNs (IPv4) to DEST on random ports,
                                        from random addresses of SOURCES (a.b.c.X-Y, spoofed:
                                        nobody answers their SYN-ACKs) and random source
                                        ports, at most RATE a second (default: as fast as it
                                        can), for at most SECONDS; prints "sent N in T s"
  lab-servers.py http-probe HOST COUNT GAP
                                        COUNT sequential GET /small (2 s each at most, GAP s
                                        apart); prints "ok N of COUNT, slowest T s"
  lab-servers.py dns-load SERVER PREFIX COUNT OUT
                                        asks SERVER:53 for PREFIX0.test ... PREFIX<COUNT-1>.test
                                        (A, UDP, one at a time, 60 s at most) and writes
                                        "NAME ADDRESS" per answer to OUT as it goes
  lab-servers.py udp-twice HOST PORT GAP
                                        one socket: a datagram, GAP seconds, another; prints
                                        what each got: "echo", "refused" or "timeout"
  lab-servers.py udp-source HOST PORT   one datagram to a lab echo; prints the source address
                                        and port the echo saw ("IP PORT"), or "timeout"
  lab-servers.py silent HOST PORT       accepts TCP connections and never says a word (a proxy
                                        that hangs in its handshake)
  lab-servers.py banner-proxy socks5|http HOST PORT
                                        a proxy that answers CONNECT and, in the same write,
                                        the first bytes of the tunnel ("banner\n"), then echoes
  lab-servers.py tls-proxy http|socks5 HOST PORT CERT KEY
                                        an HTTPS proxy (CONNECT inside TLS) or SOCKS5 over TLS
                                        (no authentication); logs "CONNECT HOST:PORT" per tunnel
  lab-servers.py https DIR PORT CERT KEY
                                        the HTTP server over TLS (certificate and key files)
  lab-servers.py banner HOST PORT       a server that speaks first ("220 banner"), then echoes
  lab-servers.py first-line HOST PORT   connects and prints the first line it receives
  lab-servers.py first-line-timed HOST PORT
                                        the same, then on a line of its own the seconds from
                                        connect() to that line (no process start-up in it)
  lab-servers.py half-close HOST PORT   GET /small, then shutdown(SHUT_WR) before reading: prints
                                        the body when the whole response still arrives
  lab-servers.py ws-read HOST PORT PATH SECONDS
                                        a WebSocket client: upgrades GET PATH (with its query,
                                        e.g. /traffic?token=S) and prints each text frame on a
                                        line for SECONDS; "refused STATUS" when not upgraded
  lab-servers.py slow-get HOST PORT PATH RATE
                                        GET PATH reading at most RATE bytes a second, a chunk
                                        every 10 ms into a small receive buffer (a reset is seen
                                        within about 10 ms); prints "BYTES complete", "BYTES
                                        reset" or "BYTES error: ..." (bounded: 120 s)
  lab-servers.py tcp-many HOST PORT SEQUENTIAL CONCURRENT
                                        SEQUENTIAL one-after-another GET /small, then
                                        CONCURRENT at once; prints "sequential ok/N concurrent ok/M"
"""
import http.server
import select
import socket
import socketserver
import sys
import threading
import time


class DualStackServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    request_queue_size = 1024

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def http_server(directory, port, cert=None, key=None):
    class Handler(http.server.SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=directory, **kwargs)

        def log_message(self, *args):
            pass

    server = DualStackServer(("::", int(port)), Handler)
    if cert:
        import ssl
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()

def listening(host, port):
    """A TCP server socket on host:port."""
    server = socket.socket(family_of(host), socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, int(port)))
    server.listen(64)
    return server


def read_exactly(conn, n):
    """n bytes from conn; ConnectionError when it closes first."""
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def read_head(conn):
    """Reads until the end of an HTTP head (CRLF CRLF) or EOF; returns what came, which may run past the head
    (it is complete only when it contains CRLF CRLF)."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(4096)
        if not chunk:
            break
        head += chunk
    return head


def echo_until_closed(conn):
    """Sends back whatever arrives until the peer closes."""
    while True:
        data = conn.recv(4096)
        if not data:
            return
        conn.sendall(data)


def serve_forever(server, serve):
    """Each accepted connection on a thread of its own."""
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def banner(host, port):
    """A server that speaks first (as SMTP and SSH do), then echoes."""
    def serve(conn):
        with conn:
            conn.sendall(b"220 banner\r\n")
            echo_until_closed(conn)

    serve_forever(listening(host, port), serve)


def udp_echo(port, *addresses):
    # One socket per address: a wildcard-bound UDP socket would answer from whatever
    # source the route picks, and a connected client drops replies from another address.
    socks = []
    for address in addresses or ("10.77.200.2", "10.77.200.3", "fd77:200::2"):
        sock = socket.socket(family_of(address), socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((address, int(port)))
        socks.append(sock)
    while True:
        ready, _, _ = select.select(socks, [], [])
        for sock in ready:
            data, addr = sock.recvfrom(65535)
            sock.sendto(f"{addr[0]} {addr[1]} ".encode() + data, addr)


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def slow_get(host, port, path, rate):
    rate = int(rate)
    chunk = max(1024, rate // 100)
    sock = socket.socket(family_of(host), socket.SOCK_STREAM)
    # A small receive buffer keeps the sender held back rather than the whole body queued here.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.settimeout(10)
    total = 0
    try:
        sock.connect((host, int(port)))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        start = time.monotonic()
        while time.monotonic() - start < 120:
            data = sock.recv(chunk)
            if not data:
                print(f"{total} complete", flush=True)
                return
            total += len(data)
            ahead = total / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(min(ahead, 0.01))
        print(f"{total} timeout", flush=True)
    except ConnectionResetError:
        print(f"{total} reset", flush=True)
    except OSError as error:
        print(f"{total} error: {error}", flush=True)


def udp_client(host, port, count, size=64):
    count, size = int(count), int(size)
    sock = socket.socket(family_of(host), socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    received, sent, seen = 0, 0, set()
    deadline = time.monotonic() + 60
    window = 64  # datagrams in flight: no loss from our own burst, only from the path
    while (sent < count or received < sent) and time.monotonic() < deadline:
        while sent < count and sent - received < window:
            payload = sent.to_bytes(4, "big") + b"x" * max(0, size - 4)
            try:
                sock.send(payload)
            except BlockingIOError:
                break
            except ConnectionRefusedError:
                pass  # an ICMP unreachable for an earlier datagram; this one still counts as sent
            sent += 1
        ready, _, _ = select.select([sock], [], [], 1.0)
        if not ready:
            if sent == count:
                break
            window = max(1, window // 2)
            continue
        while True:
            try:
                data = sock.recv(65535)
            except (BlockingIOError, ConnectionRefusedError):
                break
            parts = data.split(b" ", 2)
            if len(parts) == 3 and len(parts[2]) >= 4:
                n = int.from_bytes(parts[2][:4], "big")
                if n not in seen:
                    seen.add(n)
                    received += 1
    print(f"sent {sent} received {received} lost {count - received}")


def fullcone(host1, host2, port):
    sock = socket.socket(family_of(host1), socket.SOCK_DGRAM)
    sock.settimeout(3)
    seen = {}
    for host in (host1, host2):
        for _ in range(3):
            sock.sendto(b"hello", (host, int(port)))
            try:
                while True:
                    data, addr = sock.recvfrom(2048)
                    if addr[0] == host:
                        seen[host] = data.split(b" ")[1].decode()
                        break
                break
            except socket.timeout:
                continue
    print(f"{host1} {seen.get(host1, '-')} {host2} {seen.get(host2, '-')}")


def fetch_small(host, port=80, timeout=10, host_header=None):
    """GET /small on a fresh connection; the whole answer (the server closes). OSError on failure
    (ConnectionRefusedError/ConnectionResetError for a RST, socket.timeout), for callers that tell them apart."""
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(f"GET /small HTTP/1.1\r\nHost: {host_header or host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data
            data += chunk


def small_ok(data):
    return data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n", 1)[0] and data.endswith(b"\r\n\r\nok\n")


def get_small(host, port):
    try:
        return small_ok(fetch_small(host, port))
    except OSError:
        return False


def tcp_many(host, port, sequential, concurrent):
    sequential, concurrent = int(sequential), int(concurrent)
    ok_seq = sum(1 for _ in range(sequential) if get_small(host, port))
    results = []
    lock = threading.Lock()

    def worker():
        r = get_small(host, port)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=worker) for _ in range(concurrent)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    print(f"sequential {ok_seq}/{sequential} concurrent {sum(results)}/{concurrent}")


def udp_twice(host, port, gap):
    sock = socket.socket(family_of(host), socket.SOCK_DGRAM)
    sock.connect((host, int(port)))
    sock.settimeout(2)
    results = []
    for i in range(2):
        if i:
            time.sleep(float(gap))
        try:
            sock.send(b"ping")
            sock.recv(2048)
            results.append("echo")
        except ConnectionRefusedError:
            results.append("refused")
        except socket.timeout:
            results.append("timeout")
    print(" ".join(results), flush=True)


def udp_source(host, port):
    sock = socket.socket(family_of(host), socket.SOCK_DGRAM)
    sock.connect((host, int(port)))
    sock.settimeout(2)
    for _ in range(3):
        sock.send(b"who")
        try:
            words = sock.recv(2048).split(b" ")
            print(words[0].decode(), words[1].decode())
            return
        except (socket.timeout, ConnectionRefusedError):
            continue
    print("timeout")


def silent(host, port):
    server = socket.socket(family_of(host), socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, int(port)))
    server.listen(64)
    held = []
    while True:
        held.append(server.accept()[0])


def banner_proxy(kind, host, port):
    def serve(conn):
        with conn:
            if kind == "socks5":
                conn.recv(3)  # greeting: 5, 1, 0
                conn.sendall(b"\x05\x00")
                conn.recv(512)  # the CONNECT request
                reply = b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"
            else:
                if b"\r\n\r\n" not in read_head(conn):
                    return
                reply = b"HTTP/1.1 200 Connection established\r\n\r\n"
            conn.sendall(reply + b"banner\n")
            echo_until_closed(conn)

    serve_forever(listening(host, port), serve)


def tls_proxy(kind, host, port, cert, key):
    """An HTTPS proxy (kind http: CONNECT inside TLS) or SOCKS5 over TLS (kind socks5, no
    authentication), each connection logged as CONNECT host:port on stdout."""
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = socket.socket(family_of(host), socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, int(port)))
    server.listen(64)

    def target(conn):
        if kind == "http":
            request = read_head(conn)
            if b"\r\n\r\n" not in request:
                raise ConnectionError("closed")
            authority = request.split(b" ")[1].decode()
            name, _, port = authority.rpartition(":")
            return name.strip("[]"), int(port), b"HTTP/1.1 200 Connection established\r\n\r\n"
        read_exactly(conn, 2)
        conn.recv(255)  # the methods
        conn.sendall(b"\x05\x00")
        _, _, _, atyp = read_exactly(conn, 4)
        if atyp == 1:
            name = socket.inet_ntop(socket.AF_INET, read_exactly(conn, 4))
        elif atyp == 4:
            name = socket.inet_ntop(socket.AF_INET6, read_exactly(conn, 16))
        else:
            name = read_exactly(conn, read_exactly(conn, 1)[0]).decode()
        port = int.from_bytes(read_exactly(conn, 2), "big")
        return name, port, b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"

    def pump(source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def serve(raw):
        try:
            conn = context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as error:
            print("TLS handshake failed: %s" % error, flush=True)
            raw.close()
            return
        with conn:
            try:
                name, port, reply = target(conn)
                print("CONNECT %s:%d" % (name, port), flush=True)
                upstream = socket.create_connection((name, port), timeout=10)
                upstream.settimeout(None)
            except (OSError, ValueError) as error:
                print("failed: %s" % error, flush=True)
                return
            conn.sendall(reply)
            with upstream:
                threading.Thread(target=pump, args=(upstream, conn), daemon=True).start()
                pump(conn, upstream)

    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def first_line(host, port, timed=False):
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=5) as s:
        data = b""
        while b"\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    print(data.split(b"\n")[0].decode(errors="replace"))
    if timed:
        print(f"{time.monotonic() - started:.3f}")


def half_close(host, port):
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET /small HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    print(data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace"), end="")


def dns_query(server, name, transport="udp"):
    import random
    import struct
    qid = random.randrange(65536)
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    query = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)
    try:
        if transport == "tcp":
            with socket.create_connection((server, 53), timeout=3) as s:
                s.sendall(struct.pack(">H", len(query)) + query)
                length = struct.unpack(">H", s.recv(2))[0]
                data = b""
                while len(data) < length:
                    chunk = s.recv(length - len(data))
                    if not chunk:
                        break
                    data += chunk
        else:
            s = socket.socket(family_of(server), socket.SOCK_DGRAM)
            s.settimeout(3)
            s.sendto(query, (server, 53))
            data, _ = s.recvfrom(65535)
    except OSError:
        print("no answer")
        return
    rid, flags, qd, an = struct.unpack(">HHHH", data[:8])
    if rid != qid:
        print("wrong id")
        return
    offset = 12 + len(question) + 4
    addresses = []
    for _ in range(an):
        while data[offset] != 0 and data[offset] & 0xC0 != 0xC0:
            offset += data[offset] + 1
        offset += 2 if data[offset] & 0xC0 == 0xC0 else 1
        rtype, _, _, rdlen = struct.unpack(">HHIH", data[offset:offset + 10])
        offset += 10
        if rtype == 1 and rdlen == 4:
            addresses.append(socket.inet_ntoa(data[offset:offset + 4]))
        offset += rdlen
    print(" ".join(addresses) if addresses else "no answer")


def dns_load(server, prefix, count, out_path):
    import struct
    s = socket.socket(family_of(server), socket.SOCK_DGRAM)
    s.settimeout(0.5)
    deadline = time.monotonic() + 60
    with open(out_path, "w") as out:
        for i in range(int(count)):
            if time.monotonic() > deadline:
                break
            name = "%s%d.test" % (prefix, i)
            q = struct.pack(">HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + b"".join(
                bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
            s.sendto(q, (server, 53))
            try:
                r, _ = s.recvfrom(2048)
            except (socket.timeout, ConnectionRefusedError):
                continue
            if r[:2] != q[:2] or r[7] == 0:
                continue
            out.write("%s %s\n" % (name, socket.inet_ntoa(r[-4:])))
            out.flush()


def syn_flood(destination, count, seconds, sources, rate="0"):
    import random
    import struct
    prefix, span = sources.rsplit(".", 1)
    low, high = (int(x) for x in span.split("-"))
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    dst = socket.inet_aton(destination)
    deadline = time.monotonic() + float(seconds)
    started = time.monotonic()
    sent = 0

    def checksum(data):
        total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
        total = (total >> 16) + (total & 0xFFFF)
        total += total >> 16
        return ~total & 0xFFFF

    rate = float(rate)
    for i in range(int(count)):
        if i % 100 == 0:
            now = time.monotonic()
            if now > deadline:
                break
            if rate > 0 and i / rate > now - started:
                time.sleep(i / rate - (now - started))
        src = socket.inet_aton("%s.%d" % (prefix, random.randint(low, high)))
        sport, dport = random.randint(1024, 65535), random.randint(1, 65535)
        tcp = struct.pack("!HHIIBBHHH", sport, dport, random.getrandbits(32), 0, 5 << 4, 0x02, 64240, 0, 0)
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xFFFF, 0, 64, 6, 0, src, dst)
        try:
            s.sendto(ip + tcp, (destination, 0))
            sent += 1
        except OSError:
            time.sleep(0.001)  # a full socket buffer: let the queue drain
    print("sent %d in %.2f s" % (sent, time.monotonic() - started))


def http_probe(host, count, gap):
    ok = 0
    slowest = 0.0
    for _ in range(int(count)):
        started = time.monotonic()
        try:
            if small_ok(fetch_small(host, 80, timeout=2, host_header="lab")):
                ok += 1
        except OSError:
            pass
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(float(gap))
    print("ok %d of %s, slowest %.2f s" % (ok, count, slowest))


def ws_read(host, port, path, seconds):
    import base64
    import os
    key = base64.b64encode(os.urandom(16)).decode()
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = read_head(s)
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    if " 101 " not in status + " ":
        print("refused " + status.split(" ")[1] if " " in status else "refused ?", flush=True)
        return
    buffer = head.split(b"\r\n\r\n", 1)[1]
    deadline = time.monotonic() + float(seconds)

    def need(n):
        nonlocal buffer
        while len(buffer) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            s.settimeout(left)
            chunk = s.recv(65536)
            if not chunk:
                raise EOFError
            buffer += chunk
        taken, buffer = buffer[:n], buffer[n:]
        return taken

    try:
        while True:
            b0, b1 = need(2)
            length = b1 & 0x7F
            if length == 126:
                length = int.from_bytes(need(2), "big")
            elif length == 127:
                length = int.from_bytes(need(8), "big")
            payload = need(length)
            opcode = b0 & 0x0F
            if opcode == 1:
                print(payload.decode(errors="replace"), flush=True)
            elif opcode == 8:
                return
    except (TimeoutError, EOFError, socket.timeout, OSError):
        pass
    finally:
        s.close()


def socks_udp(proxy_host, proxy_port, target_host, target_port, user="", password=""):
    """A SOCKS5 UDP ASSOCIATE client: one datagram to target through the proxy; prints the address the reply
    names and the reply ("10.77.200.3 7 <echo text>"), or what went wrong."""
    def read_address(conn):
        atyp = read_exactly(conn, 1)[0]
        if atyp == 1:
            host = socket.inet_ntop(socket.AF_INET, read_exactly(conn, 4))
        elif atyp == 4:
            host = socket.inet_ntop(socket.AF_INET6, read_exactly(conn, 16))
        else:
            host = read_exactly(conn, read_exactly(conn, 1)[0]).decode()
        return host, int.from_bytes(read_exactly(conn, 2), "big")

    def encode(host, port):
        try:
            return b"\x01" + socket.inet_pton(socket.AF_INET, host) + int(port).to_bytes(2, "big")
        except OSError:
            name = host.encode()
            return b"\x03" + bytes([len(name)]) + name + int(port).to_bytes(2, "big")

    conn = socket.create_connection((proxy_host, int(proxy_port)), timeout=5)
    conn.sendall(b"\x05\x01" + (b"\x02" if user else b"\x00"))
    if read_exactly(conn, 2)[1] == 2:
        conn.sendall(b"\x01" + bytes([len(user)]) + user.encode() + bytes([len(password)]) + password.encode())
        if read_exactly(conn, 2)[1] != 0:
            raise SystemExit("socks-udp: authentication failed")
    conn.sendall(b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
    reply = read_exactly(conn, 3)
    if reply[1] != 0:
        raise SystemExit(f"socks-udp: UDP ASSOCIATE refused with code {reply[1]}")
    bound_host, bound_port = read_address(conn)
    if bound_host in ("0.0.0.0", "::"):
        bound_host = proxy_host
    udp = socket.socket(family_of(bound_host), socket.SOCK_DGRAM)
    udp.settimeout(5)
    udp.sendto(b"\x00\x00\x00" + encode(target_host, target_port) + b"hello", (bound_host, bound_port))
    data, _ = udp.recvfrom(65535)
    if data[2] != 0 or data[3] not in (1, 3, 4):
        raise SystemExit("socks-udp: bad reply header")
    if data[3] == 1:
        host, rest = socket.inet_ntop(socket.AF_INET, data[4:8]), data[8:]
    elif data[3] == 4:
        host, rest = socket.inet_ntop(socket.AF_INET6, data[4:20]), data[20:]
    else:
        host, rest = data[5:5 + data[4]].decode(), data[5 + data[4]:]
    print(host, int.from_bytes(rest[:2], "big"), rest[2:].decode(errors="replace"))
    conn.close()


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {
        "http": http_server,
        "udp-echo": udp_echo,
        "udp-client": udp_client,
        "fullcone": fullcone,
        "tcp-many": tcp_many,
        "slow-get": slow_get,
        "dns-query": dns_query,
        "dns-load": dns_load,
        "syn-flood": syn_flood,
        "http-probe": http_probe,
        "udp-twice": udp_twice,
        "udp-source": udp_source,
        "silent": silent,
        "half-close": half_close,
        "banner-proxy": banner_proxy,
        "tls-proxy": tls_proxy,
        "first-line": first_line,
        "first-line-timed": lambda host, port: first_line(host, port, timed=True),
        "https": lambda directory, port, cert, key: http_server(directory, port, cert, key),
        "banner": banner,
        "ws-read": ws_read,
        "socks-udp": socks_udp,
    }[command](*args)
