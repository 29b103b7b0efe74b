#!/usr/bin/env python3
"""Drive a Clash/mihomo external controller with a third-party client from PyPI (clashctl).

    clash-client-check.py URL SECRET GROUP MEMBER [--min-connections N] [--trace]

Run by Scripts/clash-client-check.sh inside a venv that has the pinned clashctl. It uses the
client's own API (clashctl.api.Clash, whose pydantic models validate every response), not raw
HTTP, and checks, each printed as PASS/FAIL with what it saw:

  - GET /version parses;
  - GET /proxies lists GROUP as a Selector whose `all` contains MEMBER;
  - PUT /proxies/GROUP {"name": MEMBER} switches it: GET /proxies/GROUP and GET /proxies then
    show now == MEMBER; then back to the member it had before, confirmed the same way (if MEMBER
    was already selected, it goes to another member first, so a switch is always seen);
  - GET /connections parses, with at least N connections (default 0);
  - GET /rules and GET /configs parse (reported; a failure there fails too).

--trace prints every HTTP exchange (method, path, status, the first 300 bytes of each body): it
is what to paste into a report when a check fails. Exit 0 only when every check held.
"""

import argparse
import asyncio
import sys

try:
    import httpx
    from clashctl.api import Clash
except ImportError as e:  # run outside the venv
    sys.exit(f"clash-client-check.py: {e}; run it through Scripts/clash-client-check.sh, which installs clashctl")

failures = []


def check(ok, what):
    print(("PASS " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)
    return ok


def install_trace(client):
    """Print each request and response the client makes (httpx event hooks on its own session)."""

    async def on_request(req):
        body = req.content[:300].decode("utf-8", "replace") if req.content else ""
        print(f"  > {req.method} {req.url.raw_path.decode()} {body}".rstrip(), flush=True)

    async def on_response(resp):
        await resp.aread()
        print(f"  < {resp.status_code} {resp.headers.get('content-type', '-')} "
              f"{resp.content[:300].decode('utf-8', 'replace')!r}", flush=True)

    client._client.event_hooks = {"request": [on_request], "response": [on_response]}


async def step(name, coro):
    """Run one client call; a raised error is a failed check with the error's text."""
    try:
        return await coro
    except Exception as e:  # noqa: BLE001 - any client error is a finding to report
        check(False, f"{name}: {type(e).__name__}: {e}")
        return None


async def run(args):
    async with Clash(args.url, args.secret, timeout_ms=args.timeout_ms) as c:
        if args.trace:
            install_trace(c)

        v = await step("GET /version", c.version())
        if v is not None:
            check(True, f"GET /version: version={v.version!r} premium={v.premium!r}")

        proxies = await step("GET /proxies", c.proxies())
        if proxies is None:
            return
        print(f"proxies ({len(proxies)}):")
        for name, p in proxies.items():
            extra = f" now={p.now!r} all={p.all!r}" if p.all is not None else ""
            print(f"  {name}: {p.proxy_type.value}{extra}")
        group = proxies.get(args.group)
        if not check(group is not None, f"GET /proxies lists the group {args.group!r}"):
            return
        check(group.proxy_type.is_selector(), f"{args.group!r} is a Selector (type {group.proxy_type.value!r})")
        members = group.all or []
        if not check(args.member in members, f"{args.member!r} is a member of {args.group!r} (all={members!r})"):
            return
        for m in members:
            check(m in proxies, f"member {m!r} is listed in /proxies too")

        before = await step(f"GET /proxies/{args.group}", c.proxy(args.group))
        if before is None:
            return
        print(f"selection before: {args.group} -> {before.now!r}")
        original = before.now
        if original == args.member:
            other = next((m for m in members if m != args.member), None)
            if other is not None:
                await switch(c, args.group, other)
        await switch(c, args.group, args.member)
        print(f"selection after:  {args.group} -> {args.member!r}")
        if original and original != args.member:
            await switch(c, args.group, original)
            print(f"selection restored: {args.group} -> {original!r}")

        conns = await step("GET /connections", c.connections())
        if conns is not None:
            print(f"connections: {len(conns.connections)} open, downloadTotal={conns.download_total} "
                  f"uploadTotal={conns.upload_total}")
            for k in conns.connections[:10]:
                m = k.metadata
                print(f"  {k.id} {m.network} {m.source_ip}:{m.source_port} -> "
                      f"{m.host or m.destination_ip}:{m.destination_port} chains={k.chains} "
                      f"rule={k.rule.value}({k.rule_payload}) up={k.upload} down={k.download}")
            check(len(conns.connections) >= args.min_connections,
                  f"GET /connections: {len(conns.connections)} >= {args.min_connections}")

        rules = await step("GET /rules", c.rules())
        if rules is not None:
            check(True, f"GET /rules: {len(rules.rules)} rules")
            for r in rules.rules[:10]:
                print(f"  {r.rule_type.value},{r.payload} -> {r.proxy}")
        cfg = await step("GET /configs", c.configs())
        if cfg is not None:
            check(True, f"GET /configs: mode={cfg.mode.value} log-level={cfg.log_level.value} "
                        f"mixed-port={cfg.mixed_port}")


async def switch(c, group, member):
    await step(f"PUT /proxies/{group} {member}", c.select(group, member))
    one = await step(f"GET /proxies/{group}", c.proxy(group))
    if one is not None:
        check(one.now == member, f"PUT /proxies/{group} {{name: {member!r}}}: GET /proxies/{group} now={one.now!r}")
    every = await step("GET /proxies", c.proxies())
    if every is not None and group in every:
        check(every[group].now == member, f"GET /proxies shows {group} now={every[group].now!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", help="controller base URL, e.g. http://127.0.0.1:9090")
    ap.add_argument("secret", help="the controller's secret ('' for none)")
    ap.add_argument("group", help="a select group to switch")
    ap.add_argument("member", help="the member of GROUP to select")
    ap.add_argument("--min-connections", type=int, default=0)
    ap.add_argument("--timeout-ms", type=int, default=5000)
    ap.add_argument("--trace", action="store_true", help="print every HTTP exchange")
    args = ap.parse_args()
    try:
        asyncio.run(asyncio.wait_for(run(args), 60))
    except (asyncio.TimeoutError, httpx.HTTPError) as e:
        check(False, f"gave up: {type(e).__name__}: {e}")
    if failures:
        print(f"clash-client-check: {len(failures)} check(s) failed against {args.url}:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        sys.exit(1)
    print(f"clash-client-check: all checks held against {args.url}")


if __name__ == "__main__":
    main()
