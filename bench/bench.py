#!/usr/bin/env python3
"""Side-by-side benchmark: passport vs nginx (one worker, same JSON, same Authorization
check) vs a minimal hyper server (the ceiling for this stack). Run through bench/run.sh.

Servers are pinned to core 0, load generators (wrk, passport loadtest) to core 1. For each
scenario and server: req/s, latency percentiles, and the server's CPU time per request
(utime+stime from /proc over the run, all nginx processes summed). Servers alternate order
across repeats; medians are reported. Results: a markdown table on stdout, raw runs as JSON.
"""
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release")
PASSPORT = os.path.join(REL, "passport")
HYPER = os.path.join(REL, "examples", "hyper_baseline")
DURATION = int(os.environ.get("DURATION", "5"))
REPEATS = int(os.environ.get("REPEATS", "3"))
CONNS = [int(c) for c in os.environ.get("CONNS", "1,64,256,1024").split(",")]
SERVER_CORE = os.environ.get("SERVER_CORE", "0")
LOAD_CORE = os.environ.get("LOAD_CORE", "1")
WORK = sys.argv[1]
TICK = os.sysconf("SC_CLK_TCK")

PORTS = {"passport": 19911, "nginx": 19921, "hyper": 19931}
ADMIN = 19912
STS = 19913
PATH = "/v1/credentials"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def wait_port(port, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", port))
            return True
        except OSError:
            time.sleep(0.0005)
        finally:
            s.close()
    raise RuntimeError(f"port {port} never opened")


def proc_cpu(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def children(pid):
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return []
    return [int(p) for p in out.split()]


class Server:
    def __init__(self, name, proc):
        self.name, self.proc = name, proc

    def pids(self):
        # nginx: master + workers; others: the one process.
        return [self.proc.pid] + children(self.proc.pid)


def start_servers(token):
    servers = {}
    env = dict(os.environ, PASSPORT_LOG="warn")
    # passport, with start-to-listen measured by a tight poll (before the STS round trip:
    # passport binds, then refreshes).
    t0 = time.monotonic()
    p = subprocess.Popen(
        ["taskset", "-c", SERVER_CORE, PASSPORT, "serve",
         "--listen", f"127.0.0.1:{PORTS['passport']}", "--admin-listen", f"127.0.0.1:{ADMIN}",
         "--auth-token-file", f"{WORK}/auth", "--role-arn", "arn:aws:iam::123456789012:role/bench",
         "--token-file", f"{WORK}/jwt", "--sts-endpoint", f"http://127.0.0.1:{STS}",
         "--region", "us-east-1", "--drain-delay", "0s", "--max-connections", "4096"],
        env=env, stderr=open(f"{WORK}/passport.log", "w"))
    wait_port(PORTS["passport"])
    start_ms = (time.monotonic() - t0) * 1000
    servers["passport"] = Server("passport", p)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{ADMIN}/readyz", timeout=1)
            break
        except Exception:
            time.sleep(0.05)
    token = open(f"{WORK}/auth").read()
    req = urllib.request.Request(f"http://127.0.0.1:{PORTS['passport']}{PATH}",
                                 headers={"Authorization": token})
    body = urllib.request.urlopen(req, timeout=2).read()
    os.makedirs(f"{WORK}/www/v1", exist_ok=True)
    with open(f"{WORK}/www/v1/credentials", "wb") as f:
        f.write(body)
    # nginx workers run as an unprivileged user: let them reach the file.
    os.chmod(WORK, 0o711)
    os.chmod(f"{WORK}/www", 0o755)
    os.chmod(f"{WORK}/www/v1", 0o755)
    os.chmod(f"{WORK}/www/v1/credentials", 0o644)
    with open(f"{WORK}/body.json", "wb") as f:
        f.write(body)
    with open(f"{WORK}/nginx.conf", "w") as f:
        f.write(f"""worker_processes 1;
daemon off;
pid {WORK}/nginx.pid;
error_log {WORK}/nginx.err warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_body_temp_path {WORK}/ngx-tmp;
  proxy_temp_path {WORK}/ngx-tmp;
  fastcgi_temp_path {WORK}/ngx-tmp;
  uwsgi_temp_path {WORK}/ngx-tmp;
  scgi_temp_path {WORK}/ngx-tmp;
  server {{
    listen 127.0.0.1:{PORTS['nginx']} backlog=4096;
    root {WORK}/www;
    default_type application/json;
    location = {PATH} {{
      if ($http_authorization != "{token}") {{ return 403; }}
    }}
  }}
}}
""")
    servers["nginx"] = Server("nginx", subprocess.Popen(
        ["taskset", "-c", SERVER_CORE, "nginx", "-c", f"{WORK}/nginx.conf", "-p", WORK],
        stderr=open(f"{WORK}/nginx.log", "w")))
    wait_port(PORTS["nginx"])
    servers["hyper"] = Server("hyper", subprocess.Popen(
        ["taskset", "-c", SERVER_CORE, HYPER, f"127.0.0.1:{PORTS['hyper']}",
         f"{WORK}/body.json", f"{WORK}/auth"]))
    wait_port(PORTS["hyper"])
    return servers, body, start_ms


def sts_calls():
    text = urllib.request.urlopen(f"http://127.0.0.1:{ADMIN}/metrics", timeout=2).read().decode()
    # One series per served role; the bench serves only the default one.
    counts = re.findall(r"^passport_sts_request_duration_seconds_count(?:\{[^}]*\})? (\d+)", text, re.M)
    return sum(int(c) for c in counts)


def parse_wrk(out):
    def dur(s):
        m = re.match(r"([\d.]+)(us|ms|s|m)", s)
        v, u = float(m.group(1)), m.group(2)
        return v * {"us": 1, "ms": 1e3, "s": 1e6, "m": 6e7}[u]
    r = {"requests": int(re.search(r"(\d+) requests in", out).group(1)),
         "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for q in ("50", "90", "99"):
        m = re.search(rf"^\s+{q}%\s+(\S+)", out, re.M)
        r[f"p{q}_us"] = dur(m.group(1)) if m else None
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["errors"] = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(x) for x in errs.groups()) if errs else 0)
    return r


def run_load(server, tool, conns, new_conn, token, rate=None):
    port = PORTS[server.name]
    url = f"http://127.0.0.1:{port}{PATH}"
    if tool == "wrk":
        threads = min(conns, 1)
        cmd = ["taskset", "-c", LOAD_CORE, "wrk", f"-t{threads}", f"-c{conns}",
               f"-d{int(DURATION)}s", "--latency", "-H", f"Authorization: {token}", url]
        if new_conn:
            cmd[-1:-1] = ["-H", "Connection: close"]
    else:
        cmd = ["taskset", "-c", LOAD_CORE, PASSPORT, "loadtest", "--url", url,
               "--auth-token-file", f"{WORK}/auth", "--concurrency", str(conns),
               "--duration", f"{int(DURATION)}s", "--json", "--threads", "1"]
        if new_conn:
            cmd.append("--new-connection")
        if rate:
            cmd += ["--rate", str(rate)]
        if server.name == "passport":
            cmd += ["--metrics-url", f"http://127.0.0.1:{ADMIN}/metrics"]
    pids = server.pids()
    sts_before = sts_calls() if server.name == "passport" else None
    cpu0 = proc_cpu(pids)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rss = None
    if conns >= 1024:
        time.sleep(DURATION / 2)
        rss = rss_kib(pids)
    out, err = proc.communicate()
    cpu1 = proc_cpu(pids)
    if tool == "wrk":
        r = parse_wrk(out)
    else:
        j = json.loads(out)
        r = {"requests": j["fetches"], "rps": j["requests_per_second"],
             "p50_us": j["latency_us"]["p50"], "p90_us": j["latency_us"]["p90"],
             "p99_us": j["latency_us"]["p99"], "p999_us": j["latency_us"]["p999"],
             "max_us": j["latency_us"]["max"],
             "errors": j["errors"]["connect"] + j["errors"]["http"] + j["errors"]["timeout"]
             + j["errors"]["invalid_body"] + (j["fetches"] - j["ok"]),
             "valid": j["valid_bodies"]}
    r["cpu_us_per_req"] = (cpu1 - cpu0) * 1e6 / max(r["requests"], 1)
    if rss is not None:
        r["rss_kib"] = rss
    if sts_before is not None:
        r["sts_calls"] = sts_calls() - sts_before
    return r


def idle_cpu(server, seconds=5.0):
    pids = server.pids()
    c0 = proc_cpu(pids)
    time.sleep(seconds)
    return (proc_cpu(pids) - c0) / seconds * 100  # percent of a core


def main():
    servers, body, start_ms = start_servers(None)
    token = open(f"{WORK}/auth").read()
    scenarios = []
    for tool in ("wrk", "loadtest"):
        for c in CONNS:
            scenarios.append((tool, c, False))
        scenarios.append((tool, 64, True))
    order = ["passport", "nginx", "hyper"]
    results = {}  # (scenario) -> server -> [runs]
    extra = {"start_to_listen_ms": [start_ms]}
    time.sleep(1)
    extra["idle_cpu_percent"] = {name: idle_cpu(s) for name, s in servers.items()}
    extra["rss_idle_kib"] = {name: rss_kib(s.pids()) for name, s in servers.items()}
    for rep in range(REPEATS):
        # Rotate and reverse the order each repeat, so no server always goes first.
        names = order[rep % 3:] + order[:rep % 3]
        names = names if rep % 2 == 0 else names[::-1]
        for sc in scenarios:
            for name in names:
                log(f"repeat {rep + 1}/{REPEATS} {sc} {name}")
                r = run_load(servers[name], sc[0], sc[1], sc[2], token)
                results.setdefault(sc, {}).setdefault(name, []).append(r)
                log(f"   {r}")
    # Fixed rate: half of nginx's median keep-alive maximum at 64 connections (wrk).
    nginx_max = statistics.median(r["rps"] for r in results[("wrk", 64, False)]["nginx"])
    rate = int(nginx_max / 2)
    sc_rate = ("loadtest-rate", 64, False)
    for rep in range(REPEATS):
        for name in (order if rep % 2 == 0 else order[::-1]):
            log(f"repeat {rep + 1}/{REPEATS} fixed rate {rate}/s {name}")
            r = run_load(servers[name], "loadtest", 64, False, token, rate=rate)
            results.setdefault(sc_rate, {}).setdefault(name, []).append(r)
            log(f"   {r}")
    extra["idle_cpu_after_percent"] = {name: idle_cpu(s) for name, s in servers.items()}
    extra["fixed_rate"] = rate
    extra["body_bytes"] = len(body)
    for s in servers.values():
        s.proc.terminate()
    for s in servers.values():
        s.proc.wait(timeout=10)
    # Start-to-listen: a few more cold starts of passport alone.
    for _ in range(4):
        t0 = time.monotonic()
        p = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, PASSPORT, "serve", "--listen", "127.0.0.1:19941",
             "--admin-listen", "off", "--auth-token-file", f"{WORK}/auth2",
             "--role-arn", "arn:aws:iam::123456789012:role/bench", "--token-file", f"{WORK}/jwt",
             "--sts-endpoint", f"http://127.0.0.1:{STS}", "--region", "us-east-1",
             "--drain-delay", "0s"], stderr=subprocess.DEVNULL)
        wait_port(19941)
        extra["start_to_listen_ms"].append((time.monotonic() - t0) * 1000)
        p.terminate()
        p.wait()
    json.dump({"results": {"|".join(map(str, k)): v for k, v in results.items()}, "extra": extra},
              open(f"{WORK}/raw.json", "w"), indent=1)
    print(render(results, extra))
    bad = [(k, name) for k, by in results.items() for name, runs in by.items()
           for r in runs if r["errors"] or r.get("sts_calls", 0)]
    if bad:
        log(f"FAILED: errors or STS calls during load in {bad}")
        sys.exit(1)


def med(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def render(results, extra):
    lines = []
    lines.append("| load | scenario | server | req/s | ×nginx | ×hyper | CPU µs/req | ×nginx | ×hyper "
                 "| p50 µs | p99 µs | errors | STS calls |")
    lines.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for sc, by in results.items():
        tool, conns, new = sc
        label = f"{'new conn' if new else 'keep-alive'} {conns}"
        if tool == "loadtest-rate":
            tool, label = "loadtest", f"fixed {extra['fixed_rate']}/s, 64 conns"
        n_rps, h_rps = med(by["nginx"], "rps"), med(by["hyper"], "rps")
        n_cpu, h_cpu = med(by["nginx"], "cpu_us_per_req"), med(by["hyper"], "cpu_us_per_req")
        for name in ("passport", "nginx", "hyper"):
            runs = by[name]
            rps, cpu = med(runs, "rps"), med(runs, "cpu_us_per_req")
            p50, p99 = med(runs, "p50_us"), med(runs, "p99_us")
            errs = sum(r["errors"] for r in runs)
            sts = sum(r.get("sts_calls", 0) for r in runs) if name == "passport" else ""
            f = lambda v, d=1: "–" if v is None else f"{v:,.{d}f}"
            lines.append(
                f"| {tool} | {label} | {name} | {f(rps, 0)} | {rps / n_rps:.2f} | {rps / h_rps:.2f} "
                f"| {f(cpu, 2)} | {cpu / n_cpu:.2f} | {cpu / h_cpu:.2f} | {f(p50)} | {f(p99)} "
                f"| {errs} | {sts} |")
    lines.append("")
    rss = {}
    for sc, by in results.items():
        for name, runs in by.items():
            v = med(runs, "rss_kib")
            if v:
                rss[name] = max(rss.get(name, 0), v)
    lines.append(f"- RSS at 1,024 open connections (KiB, median of runs, max over tools): {rss}")
    lines.append(f"- RSS idle (KiB): {extra['rss_idle_kib']}")
    lines.append("- idle CPU over 5 s (% of a core), before / after the load: "
                 f"{ {k: round(v, 2) for k, v in extra['idle_cpu_percent'].items()} } / "
                 f"{ {k: round(v, 2) for k, v in extra['idle_cpu_after_percent'].items()} }")
    lines.append("- passport start to first listen (ms, 5 cold starts): "
                 f"{[round(v, 1) for v in extra['start_to_listen_ms']]}")
    lines.append(f"- body: {extra['body_bytes']} bytes; {DURATION:.0f} s per run, {REPEATS} repeats, medians")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
