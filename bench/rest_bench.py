"""Issue 4: token activations/s and REST reads/s, against the same bare Klein baseline as issue 2.

    python bench/rest_bench.py --rounds 3 --duration 4 --nice -10
    python bench/rest_bench.py --rounds 0 --profile reads   # only a cProfile'd run

Cases (each run = start the server pinned to CPU 0, set it up and check one response,
warm up with wrk, one measured wrk run pinned to CPU 1, stop the server by its PID):

``bare``      bench/baselines/klein_xml.py, requested through bench/wrk_paths.lua exactly as
              xmlapi_bench.py's ``bare`` case (same baseline as issue 2).
``reads``     the product (this file with ``--serve``: ``build_site`` with the REST API
              remounted with raised per-client rate limits); wrk alternates
              ``GET /api/v2/rooms/{id}`` and ``GET /api/v2/spaces/{id}/rooms`` with a Bearer
              token from ``POST /api/v2/oauth/token`` (client credentials); every response must
              be 200 with a JSON:API ``"data"`` member.
``activate``  the product; room invitations (``POST /rooms/{id}/userTokens``, maxUses 1000)
              are used through the invitation page's form, ``POST /j/`` with
              ``token=...&displayName=...`` (the ``/j`` per-address limit raised in the bench
              server only); every response must be 303 to the conference.

Nothing in the product is changed: the bench server builds the product's site and replaces
the ``/api/v2`` and ``/j`` children with the product's own classes constructed with higher
limits (constructor parameter for the REST API; the page kit's limiter for ``/j``), then
settles the garbage collector as the service does once started
(``tap.settle_garbage_collector``, when the product has it).
Ratios are computed per round against ``bare`` of that round, median over rounds. The
"other CPU" guard and the result format follow bench/common.py.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as C

PY = sys.executable
CASES = ("bare", "reads", "activate")

LUA = r"""
local reqs = {}
local counter = 0
failures = 0
local threads = {}
local mode, auth = nil, nil
function setup(thread) table.insert(threads, thread) end
function init(args)
  mode = args[1]
  auth = args[2]
  for line in io.lines(args[3]) do
    if #line > 0 then reqs[#reqs + 1] = line end
  end
  counter = math.random(#reqs)
end
function request()
  counter = counter + 1
  if counter > #reqs then counter = 1 end
  if mode == "activate" then
    return wrk.format("POST", "/j/", {["Content-Type"] = "application/x-www-form-urlencoded"},
                      "token=" .. reqs[counter] .. "&displayName=Bench+User")
  end
  return wrk.format("GET", reqs[counter], {["Authorization"] = "Bearer " .. auth})
end
function response(status, headers, body)
  if mode == "activate" then
    if status ~= 303 then failures = failures + 1 end
  elseif status ~= 200 or not string.find(body, '"data"', 1, true) then
    failures = failures + 1
  end
end
function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do failed = failed + thread:get("failures") end
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, "failed_checks": %d, ' ..
    '"errors_connect": %d, "errors_read": %d, "errors_write": %d, "errors_status": %d, ' ..
    '"errors_timeout": %d, "lat_p50_us": %d, "lat_p90_us": %d, "lat_p99_us": %d, ' ..
    '"lat_mean_us": %.1f, "lat_max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, failed,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
"""


# --- the bench server (the product's site, limits raised) -----------------------------------


def serve(port: int, log_path: str, cprofile: str | None = None) -> None:
    C.raise_nofile()
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred
    from twisted.internet.endpoints import serverFromString
    from twisted.logger import globalLogBeginner
    from twisted.web.resource import Resource

    from meetplatform import tap
    from meetplatform.config import Settings
    from meetplatform.invitations import Invitations
    from meetplatform.registry import Registry
    from meetplatform.restapi import RestApi
    from meetplatform.restapi.base import RateLimits
    from meetplatform.restapi.ratelimit import Limit
    from meetplatform.store import Store
    from meetplatform.web.invite import AddressLimiter, InvitePages
    from meetplatform.web.pages import WebPages

    log_file = open(log_path, "a")  # noqa: SIM115 - for the process lifetime
    globalLogBeginner.beginLoggingTo([C.product_log_observer(log_file)], redirectStandardIO=False)
    public_url = f"http://127.0.0.1:{port}"
    listen = f"tcp:{port}:interface=127.0.0.1"
    data_dir = Path(tempfile.mkdtemp(prefix="rest-bench-"))
    settings = Settings(secret="b" * 40, public_url=public_url, listen=(listen,),
                        data_dir=data_dir, secret_file=data_dir / "secret")
    registry = Registry(reactor, public_url)
    store = Store.open(reactor, data_dir)  # type: ignore[arg-type]
    reactor.addSystemEventTrigger("before", "shutdown",
                                  lambda: Deferred.fromCoroutine(store.close()))
    reactor.addSystemEventTrigger("after", "shutdown",
                                  lambda: shutil.rmtree(data_dir, ignore_errors=True))
    if hasattr(tap, "build_site"):
        root = tap.build_site(reactor, settings, registry, store)
    else:  # since the parts are built in meetplatform.build
        from meetplatform.build import build_site

        root = build_site(reactor, settings, registry, store)
    # Same classes as build_site, limits raised (a load test from one client, one address).
    invitations = Invitations(reactor, settings, registry, store)
    big = Limit(rate=1e9, burst=10**9)
    api = Resource()
    api.putChild(b"v2", RestApi(reactor, settings, registry, store, invitations=invitations,
                                rate_limits=RateLimits(client=big, user=big, anonymous=big))
                 .resource())
    root.putChild(b"api", api)
    invite = InvitePages(reactor, settings, registry, store, invitations=invitations,
                         pages=WebPages(reactor, settings, registry))
    # The page kit's limiter (before the kit of issue 9: the pages' own).
    getattr(invite, "kit", invite).limiter = AddressLimiter(reactor, rate=1e9, burst=10**9)
    root.putChild(b"j", invite.resource())
    site = tap.MeetplatformSite(root, clock=reactor, max_query_bytes=settings.max_query_bytes,
                                max_body_bytes=settings.max_body_bytes)
    if hasattr(tap, "settle_garbage_collector"):
        # As the service does once it has started (and bench/mp_server.py does).
        tap.settle_garbage_collector()

    async def go() -> None:
        client, space, secret = await store.create_client("bench", int(time.time() * 1000))
        p = await serverFromString(reactor, C.product_listen(listen)).listen(site)
        sys.stdout.write(f"READY {p.getHost().port} {client.id} {secret} {space.id}\n")
        sys.stdout.flush()

    Deferred.fromCoroutine(go()).addErrback(lambda f: (f.printTraceback(), reactor.stop()))
    if cprofile:
        import cProfile

        # CPU time, not wall time: the figures stay meaningful on a shared, busy machine.
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        try:
            reactor.run()
        finally:
            profiler.disable()
            profiler.dump_stats(cprofile)
    else:
        reactor.run()


# --- harness ------------------------------------------------------------------------------


def http(port: int, method: str, path: str, *, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a: Any, **k: Any) -> None:
        return None


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="rest-bench-"))
        self.logs = self.work / "logs"
        self.logs.mkdir(parents=True)
        self.out = Path(args.out) if args.out else C.results_file("rest")
        self.lua = self.work / "rest.lua"
        self.lua.write_text(LUA)
        # The bare baseline gets xmlapi_bench's mix URLs (it ignores the query).
        import xmlapi_bench

        self.bare_paths = self.work / "bare.paths"
        self.bare_paths.write_text("\n".join(
            xmlapi_bench.mix_paths("x" * 40, 10, 1000, "sha256")) + "\n")

    def setup_product(self, case: str, port: int, ready: str) -> tuple[list[str], dict[str, Any]]:
        _, _, client_id, secret, space = ready.split()
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        st, body = http(port, "POST", "/api/v2/oauth/token",
                        body=b"grant_type=client_credentials",
                        headers={"Authorization": "Basic " + basic,
                                 "Content-Type": "application/x-www-form-urlencoded"})
        assert st == 200, (st, body[:300])
        token = json.loads(body)["access_token"]
        jh = {"Authorization": "Bearer " + token, "Content-Type": "application/vnd.api+json"}
        st, body = http(port, "POST", f"/api/v2/spaces/{space}/rooms", headers=jh,
                        body=json.dumps({"data": {"type": "rooms",
                                                  "attributes": {"name": "Bench"}}}).encode())
        assert st == 201, (st, body[:300])
        room = json.loads(body)["data"]["id"]
        info: dict[str, Any] = {}
        if case == "reads":
            lines = [f"/api/v2/rooms/{room}", f"/api/v2/spaces/{space}/rooms"]
            for p in lines:
                st, body = http(port, "GET", p, headers=jh)
                assert st == 200 and b'"data"' in body, (p, st, body[:300])
                info["bytes_" + p.rsplit("/", 1)[1][:5]] = len(body)
            return ["reads", token, *lines], info
        secrets_: list[str] = []
        for _ in range(self.args.invitations):
            st, body = http(port, "POST", f"/api/v2/rooms/{room}/userTokens", headers=jh,
                            body=json.dumps({"data": {"type": "userTokens", "attributes": {
                                "role": "participant", "maxUses": 1000}}}).encode())
            assert st == 201, (st, body[:300])
            secrets_.append(json.loads(body)["data"]["attributes"]["token"])
        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(urllib.request.Request(
                f"http://127.0.0.1:{port}/j/", method="POST",
                data=f"token={secrets_[0]}&displayName=Check".encode()), timeout=30)
            raise RuntimeError("activation check: no redirect")
        except urllib.error.HTTPError as e:
            assert e.code == 303, (e.code, e.read()[:300])
        return ["activate", "-", *secrets_], info

    def run_once(self, case: str, round_no: int, profile: str | None = None) -> dict[str, Any]:
        a = self.args
        busy_before = C.wait_quiet(a.quiet_wait)
        port = C.free_port()
        log = str(self.logs / f"{case.replace('/', '_')}.log")
        kind, code = C.checkout(case)
        if case == "bare":
            argv = [PY, str(C.BENCH_DIR / "baselines" / "klein_xml.py"), "--port", str(port),
                    "--log", log]
        else:
            argv = [PY, str(Path(__file__).resolve()), "--serve", "--port", str(port),
                    "--log", log]
            if profile:
                argv += ["--cprofile", profile]
        server = C.start(f"server-{case.replace('/', '_')}", argv, cpu=0, log_dir=self.logs,
                         code=code)
        record: dict[str, Any] = {"bench": "rest", "case": case, "round": round_no,
                                  "conns": a.conns, "duration_s": a.duration,
                                  "load1": C.load_average(), "busy_before": busy_before,
                                  "product": C.product_fingerprint(code)}
        try:
            ready = C.expect_ready(server)
            url = f"http://127.0.0.1:{port}"
            if case == "bare":
                script, tail = str(C.BENCH_DIR / "wrk_paths.lua"), [str(self.bare_paths)]
            else:
                lines, info = self.setup_product(kind, port, ready)
                record.update(info)
                listing = self.work / f"{case.replace('/', '_')}-{round_no}.lines"
                listing.write_text("\n".join(lines[2:]) + "\n")
                script, tail = str(self.lua), [lines[0], lines[1], str(listing)]
            base = ["wrk", "-t1", f"-c{a.conns}", "--latency", "-s", script]
            warm = C.start("wrk-warmup", [*base, f"-d{a.warmup}s", url, "--", *tail],
                           cpu=1, log_dir=self.logs)
            warm.popen.wait(a.warmup + 30)
            warm.stop()
            wrk = C.start("wrk", [*base, f"-d{a.duration}s", url, "--", *tail],
                          cpu=1, log_dir=self.logs)
            pids = {"server": server.pid, "wrk": wrk.pid}
            s0 = C.sample(pids)
            result = None
            deadline = time.monotonic() + a.duration + 30
            while time.monotonic() < deadline:
                line = wrk.readline(max(deadline - time.monotonic(), 0.1))
                if line is None or line == "":
                    break
                if line.startswith("WRKJSON "):
                    result = json.loads(line[8:])
            try:
                os.waitid(os.P_PID, wrk.pid, os.WEXITED | os.WNOWAIT)
            except ChildProcessError:
                pass
            s1 = C.sample(pids)
            wrk.stop()
            if result is None:
                raise RuntimeError(f"wrk printed no result: {wrk.log_path.read_text()[-500:]}")
            use = C.usage(s0, s1)
            rps = result["requests"] / (result["duration_us"] / 1e6)
            record.update(result)
            record.update({"rps": round(rps, 1), "server_cores": use["server"]["cores"],
                           "server_us_per_req": round(use["server"]["cores"] * 1e6 / rps, 1)
                           if rps else None,
                           "wrk_cores": use["wrk"]["cores"], "other_cores": use["other"],
                           "valid": result["failed_checks"] == 0
                           and result["errors_status"] == 0})
        finally:
            server.stop(grace=60 if profile else 5)
        return record

    def run(self, case: str, round_no: int) -> dict[str, Any]:
        best = None
        for attempt in range(self.args.retries + 1):
            rec = self.run_once(case, round_no)
            rec["attempt"] = attempt
            C.log(f"round {round_no} {case}: {rec['rps']:.0f}/s, server "
                  f"{rec['server_us_per_req']} µs/req, other {rec['other_cores']:.2f} core, "
                  f"failed {rec['failed_checks']}")
            if best is None or rec["other_cores"] < best["other_cores"]:
                best = rec
            if rec["other_cores"] <= C.OTHER_CPU_LIMIT:
                break
        assert best is not None
        C.append_jsonl(self.out, best)
        return best


def summarize(records: list[dict[str, Any]]) -> str:
    rounds = sorted({r["round"] for r in records})
    by = {(r["case"], r["round"]): r for r in records}
    out = [("| case | per second (median, range) | ratio to bare (median, range) | "
           "server CPU µs/req | server cores | other cores (max) | p50 / p99 ms | failed |"),
           "|---|---|---|---|---|---|---|---|"]
    for case in dict.fromkeys(r["case"] for r in records):
        rs = [by[(case, n)] for n in rounds if (case, n) in by]
        if not rs:
            continue
        ratios = [by[(case, n)]["rps"] / by[("bare", n)]["rps"] for n in rounds
                  if (case, n) in by and ("bare", n) in by]
        out.append(
            f"| {case} | {C.median([r['rps'] for r in rs]):.0f} ({C.spread([r['rps'] for r in rs])})"
            f" | {C.median(ratios):.3f} ({C.spread(ratios)}) | "
            f"{C.median([r['server_us_per_req'] for r in rs]):.0f} | "
            f"{C.median([r['server_cores'] for r in rs]):.2f} | "
            f"{max(r['other_cores'] for r in rs):.2f} | "
            f"{C.median([r['lat_p50_us'] for r in rs]) / 1000:.1f} / "
            f"{C.median([r['lat_p99_us'] for r in rs]) / 1000:.1f} | "
            f"{sum(r['failed_checks'] + r['errors_status'] for r in rs)} |")
    compared = [("| this ÷ other checkout, same round | per second | server CPU per request |"),
                "|---|---|---|"]
    for other in dict.fromkeys(r["case"] for r in records if "@" in r["case"]):
        this = other.partition("@")[0]
        pairs = [(by[(this, n)], by[(other, n)]) for n in rounds
                 if (this, n) in by and (other, n) in by]
        rates = ", ".join(f"{a['rps'] / b['rps']:.2f}" for a, b in pairs)
        cpu = ", ".join(f"{a['server_us_per_req'] / b['server_us_per_req']:.2f}"
                        for a, b in pairs)
        compared.append(f"| {this} ÷ {other} | {rates} | {cpu} |")
    if len(compared) > 2:
        out += ["", *compared]
    return "\n".join(out)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--log", default=os.devnull, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=4, help="measured wrk seconds")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--conns", type=int, default=50)
    parser.add_argument("--invitations", type=int, default=30,
                        help="room invitations of 1,000 uses each per activate run")
    parser.add_argument("--retries", type=int, default=1)
    parser.add_argument("--quiet-wait", type=float, default=5.0)
    parser.add_argument("--nice", type=int, default=0)
    parser.add_argument("--out", default=None)
    parser.add_argument("--cases", default=",".join(CASES),
                        help="comma-separated subset of " + ", ".join(CASES) + " (bare is "
                             "always kept: the ratios need it); CASE@DIR runs the product "
                             "of the checkout DIR (this file's bench server, DIR's code)")
    parser.add_argument("--cprofile", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--profile", default=None, choices=CASES[1:],
                        help="one extra cProfile'd run of this case (server CPU time)")
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.port, args.log, args.cprofile)
        return
    C.raise_nofile()
    C.NICE = args.nice
    runner = Runner(args)
    C.append_jsonl(runner.out, {"machine": C.machine(), "argv": sys.argv,
                                "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")})
    C.log(f"logs in {runner.logs}; results in {runner.out}")
    records = []
    cases = ["bare"] + [c for c in args.cases.split(",") if c != "bare"]
    unknown = [c for c in cases if C.checkout(c)[0] not in CASES]
    if unknown:
        raise SystemExit(f"unknown cases {unknown}: use {', '.join(CASES)} (or CASE@DIR)")
    for n in range(1, args.rounds + 1):
        for case in cases:
            records.append(runner.run(case, n))
    if records:
        print(summarize(records))
    if args.profile:
        stats = runner.work / f"profile-{args.profile}.pstats"
        record = runner.run_once(args.profile, 0, profile=str(stats))
        C.append_jsonl(runner.out, {**record, "profiled": True, "kept": False})
        C.log(f"cProfile of {args.profile} (one extra run) in {stats}")
        import pstats

        pstats.Stats(str(stats)).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main(sys.argv[1:])
