#!/usr/bin/env python3
"""vigil's benchmark suite: measures vigil on this machine, against loopback only, and prints tables.

    bench/vigil_bench.py --build-dir build-bench            # the full suite (`make bench`)
    bench/vigil_bench.py --build-dir build-bench --smoke    # seconds, small N (ctest bench_smoke)
    bench/vigil_bench.py ... --only engine,scale --scale 1000,10000 --json results.json

Sections (each run bounded in count and time):
  engine   probes/s and CPU-ms per probe of vigil, blackbox_exporter (driven by wrk) and a bare
           libcurl multi loop against the same nginx, plus the machine's fresh-connection ceiling
  scale    N services at a 60 s interval (and a compressed 6 s variant): scheduler lateness, CPU,
           RSS, ticks/s, writer queue, lost ticks
  api      wrk on GET /v1/services?limit=1000 (its largest page), GET /v1/services/{id}/events
           and /v1/push/{token} with 10,000 services while the runner probes
  storage  ticks/s the SQLite and PostgreSQL stores and the Writer commit in isolation, side by
           side at each service count, DB bytes per tick (PostgreSQL on a server the tool starts on
           loopback, durable: fsync and synchronous commit on)
  history  30 days of 1,000 services at 60 s seeded into a database (bench/seed_history.cpp):
           seeding time, DB size, metrics?window=30d and /v1/uptime?window=30d read times
  micro    Google Benchmark micro-benchmarks (bench/micro_bench.cpp)

It starts its own nginx (several 127.0.0.1 ports: `return 200 "ok"` at /ok, 503 at /fail) and
blackbox_exporter on 127.0.0.1, and stops everything it started by PID, also on Ctrl-C.
Figures are read from /proc/<pid>/stat and status (CPU, RSS), vigil's /metrics and its database.
"""

import argparse
import contextlib
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SKIPPED = 77  # ctest's SKIP_RETURN_CODE for bench_smoke: a tool is missing

# Full-run and smoke-run parameters. Every duration is in seconds.
FULL = {
    "nginx_ports": 16,
    "engine_seconds": 15,
    "engine_warmup": 3,
    "engine_services": 3000,        # at 0.1 s: 30,000 probes/s offered, more than one core does
    "engine_concurrency": [100, 1000],  # a small cap, and vigil's default
    "engine_parts": "ceiling,bare,blackbox,vigil",
    "blackbox_connections": 32,
    "scale": [1000, 10000, 100000],
    "scale_interval": 60,
    "scale_window": 60,              # one full interval: every service probed once
    # Measuring starts after one interval (plus a few seconds): every service has been probed
    # once, so its state and metric series exist, as in a vigil that has been running for hours.
    "scale_warmup": 65,
    "compressed_interval": 6,
    "compressed_window": 12,
    "compressed_warmup": 9,
    "huge": 1000000,                 # the stretch goal, at huge_interval
    "huge_interval": 120,
    "huge_window": 120,
    "huge_warmup": 130,
    "huge_memory_mb": 6000,          # not attempted with less memory available (it peaks near 3 GB)
    "api_services": 10000,
    "api_heartbeats": 1000,          # of api_services: heartbeats, the push targets
    "api_interval": 10,
    "api_seconds": 10,
    "storage_seconds": 5,
    "storage_services": [10, 1000, 10000, 100000],
    "history_services": 1000,        # 1,000 services x 30 days at 60 s, 43.2 M ticks
    "history_days": 30,
    "history_http_repeats": 9,      # GETs after the first, timed one by one
    # The database backends the api, storage and history sections run on, side by side.
    "backends": ["sqlite", "postgres"],
    "micro_min_time": 0.2,
    "micro_filter": None,
    "startup_timeout": 600,
}
SMOKE = dict(FULL, **{
    "nginx_ports": 2,
    "engine_seconds": 2,
    "engine_warmup": 1,
    "engine_services": 100,
    "engine_concurrency": [50],
    "blackbox_connections": 8,
    "scale": [500],
    "scale_interval": 2,
    "scale_window": 3,
    "scale_warmup": 3,
    "compressed_interval": 1,
    "compressed_window": 2,
    "compressed_warmup": 2,
    "huge": 0,
    "api_services": 300,
    "api_heartbeats": 50,
    "api_interval": 2,
    "api_seconds": 2,
    "storage_seconds": 0.5,
    "storage_services": [100],
    "history_services": 20,
    "history_days": 2,
    "micro_min_time": 0.002,
    # Skip the big instances: setting up 1M heap entries or 10k series is not a smoke test.
    "micro_filter": "-.*/(1000000|10000)$",
    "startup_timeout": 60,
})


class BenchError(Exception):
    """A part of the suite could not run (a process did not start, a tool failed)."""


class MissingTool(Exception):
    """A tool the section needs is not installed."""


def log(text):
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# ---- processes: everything started is stopped by its PID ----

class Children:
    """The processes this run started; stop_all() ends each one by its PID."""

    def __init__(self):
        self.procs = []

    def start(self, name, argv, **kwargs):
        log(f"starting {name}: {' '.join(argv[:3])}{' ...' if len(argv) > 3 else ''}")
        proc = subprocess.Popen(argv, **kwargs)
        proc.bench_name = name
        self.procs.append(proc)
        return proc

    def stop(self, proc, sig=signal.SIGTERM, timeout=60):
        """Stops `proc` (by PID) and returns its exit code; SIGKILL after `timeout` seconds."""
        if proc.poll() is None:
            try:
                os.kill(proc.pid, sig)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"{proc.bench_name} (pid {proc.pid}) did not stop in {timeout} s: SIGKILL")
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        if proc in self.procs:
            self.procs.remove(proc)
        return proc.returncode

    def stop_all(self):
        for proc in list(reversed(self.procs)):
            self.stop(proc, timeout=30)


CHILDREN = Children()


def communicate(proc, timeout):
    """(stdout, stderr) of a started child once it exits; BenchError past `timeout` seconds. The
    child is stopped either way."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{proc.bench_name} did not finish within {timeout} s") from None
    finally:
        CHILDREN.stop(proc)


def raise_fd_limit():
    """Thousands of probes in flight need as many sockets; children inherit the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, predicate, timeout, proc=None, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what}: the process exited with code {proc.returncode}")
        try:
            if predicate():
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(interval)
    raise BenchError(f"{what}: not ready within {timeout} s")


def port_open(port):
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def http_get(url, timeout=60):
    """(status, body bytes) of a GET; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def cpu_ms(pid):
    """User + system CPU of a process (all its threads) so far, in ms, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields after "(comm)": state is [0], utime [11], stime [12] (man 5 proc: 14 and 15).
    return (int(fields[11]) + int(fields[12])) * 1000.0 / CLOCK_TICKS


def memory_mb(pid):
    """(VmRSS, VmHWM) in MB from /proc/<pid>/status: current and peak resident memory."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024.0
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def machine_cpu():
    """(busy, total) jiffies of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class Usage:
    """CPU use over a window: of one process (% of one core), of nginx, of the whole machine."""

    def __init__(self, pid, nginx=None):
        self.pid, self.nginx = pid, nginx
        self.start = self._sample()
        self.wall_start_ms = int(time.time() * 1000)

    def _sample(self):
        return (time.monotonic(), cpu_ms(self.pid), self.nginx.cpu_ms() if self.nginx else 0.0,
                machine_cpu())

    def stop(self):
        self.wall_stop_ms = int(time.time() * 1000)
        t0, c0, n0, (b0, a0) = self.start
        t1, c1, n1, (b1, a1) = self._sample()
        self.seconds = t1 - t0
        self.cpu_ms = c1 - c0
        self.percent = 100 * self.cpu_ms / 1000 / self.seconds
        self.nginx_percent = 100 * (n1 - n0) / 1000 / self.seconds
        # Of all cores: 100 % is every core busy (others' processes included).
        self.machine_percent = 100 * (b1 - b0) / max(a1 - a0, 1)
        return self


def need(tool):
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if os.path.exists(f"/usr/sbin/{tool}") else None)
    if not path:
        raise MissingTool(f"{tool} is not installed (scripts/install-deps.sh bench installs it)")
    return path


# ---- the targets: nginx and blackbox_exporter ----

class Nginx:
    """nginx on several 127.0.0.1 ports, so that many fresh connections a minute spread over
    several (address, port) pairs instead of running out of ephemeral ports in TIME_WAIT."""

    def __init__(self, workdir, ports):
        self.binary = need("nginx")
        self.dir = os.path.join(workdir, "nginx")
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        self.ports = [free_port() for _ in range(ports)]
        listens = "\n".join(f"    listen 127.0.0.1:{p} backlog=4096;" for p in self.ports)
        d = self.dir
        self.conf = os.path.join(d, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(f"""daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; multi_accept on; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  server {{
{listens}
    location = /ok {{ return 200 "ok"; }}
    location = /fail {{ return 503 "unavailable"; }}
    location / {{ return 404; }}
  }}
}}
""")
        self.proc = None

    def __enter__(self):
        # -e: the error log before the configuration is read; the default is under /var/log.
        self.proc = CHILDREN.start("nginx", [self.binary, "-p", self.dir, "-c", self.conf, "-e",
                                             os.path.join(self.dir, "error.log")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for port in self.ports:
            wait_until(f"nginx on port {port}", lambda: port_open(port), 10, self.proc)
        return self

    def __exit__(self, *exc):
        CHILDREN.stop(self.proc)

    def url(self, i, path="/ok"):
        return f"http://127.0.0.1:{self.ports[i % len(self.ports)]}{path}"

    def cpu_ms(self):
        """The master's and its workers' CPU (workers are the master's children)."""
        total = cpu_ms(self.proc.pid)
        for pid in children_of(self.proc.pid):
            total += cpu_ms(pid)
        return total


def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


class Blackbox:
    """prometheus-blackbox-exporter on 127.0.0.1 with one plain HTTP module: its default, a
    fresh connection per probe."""

    def __init__(self, workdir):
        self.binary = need("prometheus-blackbox-exporter")
        self.port = free_port()
        self.conf = os.path.join(workdir, "blackbox.yml")
        with open(self.conf, "w") as f:
            f.write("modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n"
                    "    http:\n      preferred_ip_protocol: ip4\n")
        self.log_path = os.path.join(workdir, "blackbox.log")
        self.proc = None

    def __enter__(self):
        self.log_file = open(self.log_path, "w")
        self.proc = CHILDREN.start("blackbox_exporter", [
            self.binary, f"--config.file={self.conf}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log_file, stderr=subprocess.STDOUT)
        wait_until("blackbox_exporter",
                   lambda: http_get(f"http://127.0.0.1:{self.port}/-/healthy", 2)[0] == 200,
                   20, self.proc)
        return self

    def __exit__(self, *exc):
        CHILDREN.stop(self.proc)
        self.log_file.close()


class Postgres:
    """A PostgreSQL 15 server for the API and history sections' PostgreSQL column, started by
    tests/tools/postgres_fixture (initdb in a temp dir as an unprivileged user when root, as the
    tests do; 127.0.0.1 only; PostgreSQL's durable defaults: fsync and synchronous commit on) and
    stopped by it by PID. Each run gets a database of its own; psql reads what vigil wrote."""

    def __init__(self, build_dir, workdir):
        self.fixture = os.path.join(build_dir, "tests", "postgres_fixture")
        if not os.access(self.fixture, os.X_OK):
            raise MissingTool(f"{self.fixture} was not built (VIGIL_BUILD_TESTS=ON builds it)")
        self.psql = need("psql")
        self.info = os.path.join(workdir, "postgres.info")
        self.server = None  # libpq key=value pairs without the database
        self.databases = 0

    def __enter__(self):
        log("starting PostgreSQL (postgres_fixture)")
        proc = CHILDREN.start("postgres_fixture", [self.fixture, "start", self.info, "durable"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, err = communicate(proc, 120)
        info = {}
        with contextlib.suppress(FileNotFoundError), open(self.info) as f:
            for line in f:
                key, _, value = line.rstrip("\n").partition(" ")
                info[key] = value
        if "unavailable" in info:
            raise MissingTool(f"no PostgreSQL server: {info['unavailable']}")
        if proc.returncode != 0 or "conninfo" not in info:
            self.__exit__()
            raise BenchError(f"postgres_fixture failed: {err.strip()[-300:]}")
        self.server = info["conninfo"]
        return self

    def __exit__(self, *exc):
        if os.path.exists(self.info):
            proc = CHILDREN.start("postgres_fixture", [self.fixture, "stop", self.info],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            communicate(proc, 60)

    def new_database(self, name):
        """A new empty database: its libpq key=value connection string (what DATABASE_URL,
        `vigil migrate` and psql take)."""
        self.databases += 1
        database = f"bench_{name}_{self.databases}"
        self.query(self.url("postgres"), f"CREATE DATABASE {database}")
        return self.url(database)

    def url(self, database):
        return f"{self.server} dbname={database}"

    def query(self, url, sql):
        """The rows of `sql` on the database `url`, each a list of text values."""
        proc = subprocess.run([self.psql, "-X", "-A", "-t", "-q", "-F", "\t", "-v",
                               "ON_ERROR_STOP=1", "-c", sql, url],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise BenchError(f"psql: {proc.stderr.strip()[:300]}")
        return [line.split("\t") for line in proc.stdout.splitlines() if line]


# ---- wrk ----

WRK_DONE = r"""
function done(summary, latency, requests)
  local ok, bad = 0, 0
  for _, t in ipairs(threads) do
    ok = ok + (t:get("ok") or 0)
    bad = bad + (t:get("bad") or 0)
  end
  io.write(string.format(
    'BENCHJSON {"requests": %d, "seconds": %.3f, "status_errors": %d, "socket_errors": %d, ' ..
    '"timeouts": %d, "p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, "mean_ms": %.3f, ' ..
    '"body_ok": %d, "body_bad": %d}\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.timeout, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, latency.mean / 1e3, ok, bad))
end
"""


def wrk_script(path, paths, body_check=None):
    """A wrk Lua script that requests `paths` in turn (each thread from its own offset) and
    prints a BENCHJSON line at the end; `body_check`: a plain string every body must contain."""
    lines = ["threads = {}",
             "function setup(thread) table.insert(threads, thread) end",
             "paths = {" + ",".join(json.dumps(p) for p in paths) + "}",
             "function init(args) ok = 0; bad = 0; i = math.random(#paths) end",
             "function request() i = i % #paths + 1; return wrk.format(nil, paths[i]) end"]
    if body_check is not None:
        lines.append("function response(status, headers, body) "
                     f"if status == 200 and body:find({json.dumps(body_check)}, 1, true) "
                     "then ok = ok + 1 else bad = bad + 1 end end")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + WRK_DONE)
    return path


def run_wrk(url, script, seconds, connections, threads=1, headers=()):
    argv = [need("wrk"), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
            "-s", script]
    for header in headers:
        argv += ["-H", header]
    argv.append(url)
    proc = CHILDREN.start("wrk", argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = communicate(proc, seconds + 30)
    for line in out.splitlines():
        if line.startswith("BENCHJSON "):
            result = json.loads(line[len("BENCHJSON "):])
            result["rps"] = result["requests"] / result["seconds"] if result["seconds"] else 0
            return result
    raise BenchError(f"wrk printed no result (exit {proc.returncode}): {err.strip()[:300]}")


# ---- vigil ----

METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)")


class Metrics:
    """The vigil_* samples of one /metrics scrape, summed over the `service` label."""

    WANTED = ("vigil_probes_total", "vigil_scheduler_lateness_seconds_bucket",
              "vigil_scheduler_lateness_seconds_count", "vigil_writer_", "vigil_probes_in_flight",
              "vigil_runner_skipped_probes_total", "vigil_services", "vigil_storage_errors_total",
              "vigil_api_requests_total")

    def __init__(self, text_lines, seconds, size):
        self.values = {}
        self.scrape_seconds = seconds
        self.scrape_bytes = size
        for raw in text_lines:
            if not raw.startswith(b"vigil_"):
                continue
            line = raw.decode()
            if not line.startswith(self.WANTED):
                continue
            m = METRIC_LINE.match(line)
            if not m:
                continue
            name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
            key = name
            if name == "vigil_probes_total":
                key += "|" + ("up" if 'result="up"' in labels else "down")
            elif name.endswith("_bucket"):
                key += "|" + re.search(r'le="([^"]*)"', labels).group(1)
            self.values[key] = self.values.get(key, 0.0) + value

    def get(self, key):
        return self.values.get(key, 0.0)

    def probes(self):
        return self.get("vigil_probes_total|up") + self.get("vigil_probes_total|down")

    def buckets(self, name):
        out = []
        for key, value in self.values.items():
            if key.startswith(name + "_bucket|"):
                le = key.split("|", 1)[1]
                out.append((math.inf if le == "+Inf" else float(le), value))
        return sorted(out)


def histogram_delta(before, after, name):
    """[(upper bound, count in the interval)] between two scrapes, cumulative as scraped."""
    b = dict(before.buckets(name))
    return [(le, count - b.get(le, 0.0)) for le, count in after.buckets(name)]


def quantile(buckets, q):
    """histogram_quantile as Prometheus computes it: linear within the bucket."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for le, cumulative in buckets:
        if cumulative >= rank:
            if le == math.inf:
                return lower
            inside = cumulative - below
            return lower + (le - lower) * ((rank - below) / inside if inside > 0 else 1)
        lower, below = le, cumulative
    return lower


def max_bound(buckets):
    """The upper bound of the highest bucket that received a sample: the max is at most this."""
    previous = 0.0
    top = None
    for le, cumulative in buckets:
        if cumulative > previous:
            top = le
        previous = cumulative
    return top


class Vigil:
    """The real `vigil run` with a generated services file, in its own directory (so no .env of
    the source tree is read), its database there too (SQLite), or the PostgreSQL database
    `database_url` of `postgres` (a Postgres). command="api": `vigil api`, serving the database
    as it is, without services file or runner."""

    def __init__(self, build_dir, workdir, name, services, concurrency=1000, startup_timeout=600,
                 postgres=None, database_url=None, db_file=None, command="run"):
        self.binary = os.path.join(build_dir, "vigil")
        if not os.access(self.binary, os.X_OK):
            raise BenchError(f"{self.binary} is missing: build the vigil target first")
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.db = db_file or os.path.join(self.dir, "vigil.db")
        self.postgres, self.database_url = postgres, database_url
        self.command = command
        self.services_file = os.path.join(self.dir, "services.json")
        if services is not None:  # `vigil api` reads none
            with open(self.services_file, "w") as f:
                json.dump(services, f, separators=(",", ":"))
        self.count = len(services or [])
        self.port = free_port()
        self.concurrency = concurrency
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = 300
        self.proc = None
        self.startup_seconds = None

    def __enter__(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "API_HOST": "127.0.0.1",
               "API_PORT": str(self.port), "SERVICES_FILE": self.services_file,
               "RUNNER_MAX_CONCURRENCY": str(self.concurrency), "LOG_LEVEL": "info",
               "PROBER_REGION": "bench"}
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        else:
            env["DB_FILE"] = self.db
        self.log_file = open(os.path.join(self.dir, "vigil.log"), "w")
        started = time.monotonic()
        self.proc = CHILDREN.start("vigil", [self.binary, self.command], cwd=self.dir, env=env,
                                   stdout=self.log_file, stderr=subprocess.STDOUT)
        wait_until("vigil /healthz", lambda: http_get(self.url("/healthz"), 5)[0] == 200,
                   self.startup_timeout, self.proc, interval=0.1)
        self.startup_seconds = time.monotonic() - started
        log(f"vigil up with {self.count} services in {self.startup_seconds:.1f} s")
        return self

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        self.log_file.close()

    def stop(self):
        """SIGTERM, then the clean shutdown: in-flight probes finish, queued ticks are written.
        SIGKILL after shutdown_timeout seconds."""
        started = time.monotonic()
        code = CHILDREN.stop(self.proc, timeout=self.shutdown_timeout)
        self.shutdown_seconds = time.monotonic() - started
        if code != 0:
            raise BenchError(f"vigil exited with code {code} at shutdown (log: {self.dir}/vigil.log)")
        return code

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def scrape(self):
        # Timed to the last byte of the body, not over Python's line splitting (at 100,000
        # services, reading the chunked body line by line took longer than vigil took to send it).
        started = time.monotonic()
        with urllib.request.urlopen(self.url("/metrics"), timeout=600) as response:
            body = response.read()
        seconds = time.monotonic() - started
        lines = [line for line in body.split(b"\n") if line.startswith(b"vigil_")]
        return Metrics(lines, seconds, len(body))

    def cpu_ms(self):
        return cpu_ms(self.proc.pid)

    def memory_mb(self):
        return memory_mb(self.proc.pid)

    def query(self, sql):
        """The rows of `sql` on vigil's database, whichever backend: the same SQL on both."""
        if self.database_url:
            return [[int(v) if v.lstrip("-").isdigit() else v for v in row]
                    for row in self.postgres.query(self.database_url, sql)]
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return [list(row) for row in db.execute(sql)]
        finally:
            db.close()

    def db_counts(self):
        """(ticks in the database, the sum of every service's stored tick_count). The runner
        counts each probe into tick_count and writes it with the batch, so a batch that never
        reached the database leaves the second above the first."""
        ticks = self.query("SELECT count(*) FROM service_ticks")[0][0]
        counted = self.query("SELECT coalesce(sum(tick_count), 0) FROM service_metrics")[0][0]
        return ticks, counted

    def db_window(self, from_ms, to_ms):
        """(ticks, up ticks) of probes that started in [from_ms, to_ms): what the runner did in
        a window, exactly, whatever the time a /metrics scrape around it took."""
        ticks, up = self.query("SELECT count(*), coalesce(sum(CASE WHEN up THEN 1 ELSE 0 END), 0)"
                               f" FROM service_ticks WHERE ts >= {int(from_ms)} AND ts < {int(to_ms)}")[0]
        return ticks, up

    def push_tokens(self):
        return [r[0] for r in self.query(
            "SELECT push_token FROM services WHERE push_token IS NOT NULL AND active")]

    def service_ids(self):
        return [r[0] for r in self.query("SELECT id FROM services WHERE active")]


def http_services(nginx, count, interval, prefix="svc", fail_every=20):
    """`count` probed services spread over nginx's ports; one in `fail_every` gets the 503 path,
    so down ticks (with their error text) are part of the load."""
    timeout = min(5.0, interval)
    return [{"name": f"{prefix}-{i:07d}",
             "url": nginx.url(i, "/fail" if fail_every and i % fail_every == fail_every - 1
                              else "/ok"),
             "interval_seconds": interval, "timeout_seconds": timeout} for i in range(count)]


# ---- sections ----

def run_bare(build_dir, nginx, seconds):
    """The bare libcurl multi loop (bench/curl_baseline.cpp): the floor for a libcurl prober."""
    bare = os.path.join(build_dir, "bench", "vigil_bench_curl")
    urls = [nginx.url(i) for i in range(len(nginx.ports))]
    proc = CHILDREN.start("vigil_bench_curl", [bare, "--seconds", str(seconds), "--max-probes",
                                               str(int(seconds * 40000)), "--concurrency", "64"]
                          + urls, stdout=subprocess.PIPE, text=True)
    out, _ = communicate(proc, seconds + 30)
    if proc.returncode != 0:
        raise BenchError(f"vigil_bench_curl exited with code {proc.returncode}")
    result = json.loads(out)
    return {"engine": "bare libcurl multi loop (1 thread, 64 in flight)",
            "probes_per_s": result["probes"] / result["seconds"],
            "cpu_ms_per_probe": result["cpu_ms_per_probe"], "rss_mb": result.get("max_rss_mb"),
            "ok_ratio": result["ok"] / max(result["probes"], 1)}


def run_blackbox(p, workdir, nginx, seconds):
    """blackbox_exporter driven by wrk at /probe?target=..., over the same nginx ports."""
    with Blackbox(workdir) as blackbox:
        probe_paths = [f"/probe?module=http_2xx&target=http%3A%2F%2F127.0.0.1%3A{port}%2Fok"
                       for port in nginx.ports]
        script = wrk_script(os.path.join(workdir, "blackbox.lua"), probe_paths,
                            body_check="\nprobe_success 1")
        url = f"http://127.0.0.1:{blackbox.port}/"
        run_wrk(url, script, 1, p["blackbox_connections"])  # warm-up
        before = cpu_ms(blackbox.proc.pid)
        result = run_wrk(url, script, seconds, p["blackbox_connections"])
        used = cpu_ms(blackbox.proc.pid) - before
        rss, peak = memory_mb(blackbox.proc.pid)
    return {"engine": f"blackbox_exporter 0.23 (wrk, {p['blackbox_connections']} conns)",
            "probes_per_s": result["rps"], "cpu_ms_per_probe": used / max(result["requests"], 1),
            "rss_mb": rss, "peak_rss_mb": peak,
            "ok_ratio": result["body_ok"] / max(result["requests"], 1)}


def run_vigil_engine(p, build_dir, workdir, nginx, seconds, concurrency):
    """vigil with many services at 0.1 s, more than it can do, so that it runs flat out."""
    count = p["engine_services"]
    services = http_services(nginx, count, 0.1, prefix="engine", fail_every=0)
    with Vigil(build_dir, workdir, f"engine-{concurrency}", services, concurrency,
               p["startup_timeout"]) as vigil:
        time.sleep(p["engine_warmup"])
        usage = Usage(vigil.proc.pid, nginx)
        time.sleep(seconds)
        usage.stop()
        rss, peak = vigil.memory_mb()
        vigil.stop()
        ticks, counted = vigil.db_counts()
        probes, up = vigil.db_window(usage.wall_start_ms, usage.wall_stop_ms)
    return {"engine": f"vigil run ({count} services at 0.1 s, ≤{concurrency} in flight)",
            "probes_per_s": probes / usage.seconds, "cpu_ms_per_probe": usage.cpu_ms / max(probes, 1),
            "rss_mb": rss, "peak_rss_mb": peak, "ok_ratio": up / max(probes, 1),
            "cpu_percent": usage.percent, "nginx_cpu_percent": usage.nginx_percent,
            "machine_cpu_percent": usage.machine_percent, "lost_ticks": counted - ticks}


def section_engine(p, build_dir, workdir, nginx):
    """Probe engine side by side: the fresh-connection ceiling (wrk, Connection: close), a bare
    libcurl multi loop, blackbox_exporter driven by wrk, and vigil saturated."""
    rows = []
    seconds = p["engine_seconds"]
    parts = p["engine_parts"].split(",")

    # 1. The machine's fresh-connection ceiling: wrk with a new connection per request.
    if "ceiling" in parts:
        script = wrk_script(os.path.join(workdir, "close.lua"), ["/ok"])
        nginx_before = nginx.cpu_ms()
        result = run_wrk(nginx.url(0), script, seconds, 32, headers=["Connection: close"])
        rows.append({"engine": "wrk -H 'Connection: close' -> nginx (ceiling)",
                     "probes_per_s": result["rps"], "cpu_ms_per_probe": None,
                     "nginx_cpu_ms_per_req": (nginx.cpu_ms() - nginx_before) / max(result["requests"], 1),
                     "rss_mb": None, "ok_ratio": 1 - (result["status_errors"] + result["socket_errors"])
                     / max(result["requests"], 1)})

    # 2. The bare libcurl multi loop: the floor for a libcurl-based prober.
    if "bare" in parts:
        rows.append(run_bare(build_dir, nginx, seconds))

    # 3. blackbox_exporter, driven by wrk at /probe?target=..., over the same ports.
    if "blackbox" in parts:
        rows.append(run_blackbox(p, workdir, nginx, seconds))

    # 4. vigil: many services at 0.1 s, more than it can do, so it runs flat out.
    if "vigil" in parts:
        for concurrency in p["engine_concurrency"]:
            rows.append(run_vigil_engine(p, build_dir, workdir, nginx, seconds, concurrency))
    cost = {}  # per engine, its cheapest configuration
    for r in rows:
        name = r["engine"].split(" ")[0]
        if r["cpu_ms_per_probe"] is not None:
            cost[name] = min(cost.get(name, math.inf), r["cpu_ms_per_probe"])

    def ratio(a, b):
        return cost[a] / cost[b] if cost.get(a) and cost.get(b) else None

    return {"rows": rows, "vigil_over_blackbox_cpu": ratio("vigil", "blackbox_exporter"),
            "vigil_over_bare_cpu": ratio("vigil", "bare")}


def scale_run(p, build_dir, workdir, nginx, count, interval, window, warmup, label):
    vigil = Vigil(build_dir, workdir, f"{label}-{count}",
                  http_services(nginx, count, interval, prefix="s"), 1000, p["startup_timeout"])
    with vigil:
        startup = vigil.startup_seconds
        time.sleep(warmup)
        # Resident memory before any /metrics scrape: a scrape's buffers stay in the heap after.
        rss_steady, _ = vigil.memory_mb()
        m1 = vigil.scrape()
        usage = Usage(vigil.proc.pid, nginx)
        time.sleep(window)
        usage.stop()
        rss, _ = vigil.memory_mb()
        m2 = vigil.scrape()
        _, hwm = vigil.memory_mb()
        lateness = histogram_delta(m1, m2, "vigil_scheduler_lateness_seconds")
        batches = histogram_delta(m1, m2, "vigil_writer_batch_size")
        probes_at_end = m2.probes()
        queue_end = m2.get("vigil_writer_queue_depth")
        queue_max = max(m1.get("vigil_writer_queue_depth"), queue_end)
        dropped = m2.get("vigil_writer_dropped_ticks_total")
        storage_errors = m2.get("vigil_storage_errors_total")
        skipped = m2.get("vigil_runner_skipped_probes_total") - m1.get(
            "vigil_runner_skipped_probes_total")
        seconds = usage.seconds
        shutdown_error = None
        probes = None
        try:
            vigil.stop()
            ticks, counted = vigil.db_counts()
            probes, _ = vigil.db_window(usage.wall_start_ms, usage.wall_stop_ms)
        except BenchError as e:
            # The window's figures stand; what reached the database is unknown.
            shutdown_error = f"{e}; writer queue {int(queue_end):,} at the last scrape"
            ticks = counted = None
        row = {
            "label": label, "services": count, "interval_s": interval, "window_s": seconds,
            "startup_s": startup,
            "lateness_p50_s": quantile(lateness, 0.5), "lateness_p99_s": quantile(lateness, 0.99),
            "lateness_max_le_s": max_bound(lateness),
            "cpu_percent": usage.percent, "nginx_cpu_percent": usage.nginx_percent,
            "machine_cpu_percent": usage.machine_percent,
            "rss_mb": rss_steady, "rss_after_scrape_mb": rss, "hwm_mb": hwm,
            "rss_kb_per_service": rss_steady * 1024 / count,
            # Every probe is a tick, and every tick is in the database once vigil has stopped.
            "probes_per_s": None if probes is None else probes / seconds,
            "expected_per_s": count / interval,
            "batch_p50": quantile(batches, 0.5), "queue_end": queue_end, "queue_max_seen": queue_max,
            "skipped": skipped, "dropped": dropped, "storage_errors": storage_errors,
            "ticks_in_db": ticks, "ticks_counted": counted, "probes_at_last_scrape": probes_at_end,
            # Lost: counted by the runner but not in the database, dropped by the writer, or
            # probed (by the last scrape) but not in the database after the clean stop.
            "lost_ticks": None if ticks is None else
            max(counted - ticks, int(dropped), int(probes_at_end) - ticks),
            "metrics_scrape_s": m2.scrape_seconds, "metrics_mb": m2.scrape_bytes / 1e6,
            "shutdown_s": getattr(vigil, "shutdown_seconds", None),
            "shutdown_error": shutdown_error,
        }
        return row


def section_scale(p, build_dir, workdir, nginx):
    runs = []
    for count in p["scale"]:
        runs.append(scale_run(p, build_dir, workdir, nginx, count, p["scale_interval"],
                              p["scale_window"], p["scale_warmup"], "interval"))
        runs.append(scale_run(p, build_dir, workdir, nginx, count, p["compressed_interval"],
                              p["compressed_window"], p["compressed_warmup"], "compressed"))
    if p["huge"]:
        available_mb = available_memory_mb()
        if available_mb >= p["huge_memory_mb"]:
            try:
                runs.append(scale_run(p, build_dir, workdir, nginx, p["huge"], p["huge_interval"],
                                      p["huge_window"], p["huge_warmup"], "stretch"))
            except BenchError as e:
                runs.append({"label": "stretch", "services": p["huge"], "error": str(e)})
        else:
            runs.append({"label": "stretch", "services": p["huge"],
                         "error": f"not attempted: {available_mb:.0f} MB available"})
    return {"rows": runs}


def available_memory_mb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def section_api(p, build_dir, workdir, nginx, postgres):
    """The API's reads under load, on each backend in turn (`postgres`: a Postgres, or the reason
    there is none)."""
    rows, skipped = [], []
    lost = {}
    for backend in p["backends"]:
        if backend == "postgres" and isinstance(postgres, str):
            skipped.append(f"postgres: {postgres}")
            continue
        run = api_run(p, build_dir, workdir, nginx, backend, postgres)
        rows += run["rows"]
        lost[backend] = run["lost_ticks"]
    return {"rows": rows, "services": p["api_services"], "heartbeats": p["api_heartbeats"],
            "interval_s": p["api_interval"], "lost_ticks": sum(lost.values()),
            "lost_ticks_by_backend": lost, "skipped": skipped}


def api_run(p, build_dir, workdir, nginx, backend, postgres):
    count, beats = p["api_services"], p["api_heartbeats"]
    services = http_services(nginx, count - beats, p["api_interval"], prefix="api")
    services += [{"name": f"beat-{i:06d}", "kind": "heartbeat", "interval_seconds": 3600}
                 for i in range(beats)]
    rows = []
    seconds = p["api_seconds"]
    database = {"postgres": postgres, "database_url": postgres.new_database("api")} \
        if backend == "postgres" else {}
    with Vigil(build_dir, workdir, f"api-{backend}", services, 1000, p["startup_timeout"],
               **database) as vigil:
        time.sleep(2)
        ids = vigil.service_ids()
        tokens = vigil.push_tokens()
        # The list pages: its largest page, 1,000 services, is the heaviest request.
        page = "/v1/services?limit=1000"
        status, body = http_get(vigil.url(page))
        listed = len(json.loads(body)["data"]["services"]["data"]) if status == 200 else 0
        size = f"{listed} services, {len(body) / 1e6:.1f} MB a response"
        # One client (a dashboard) shows the request's own time; four show it queued behind
        # others on two cores.
        plan = [("GET /v1/services?limit=1000", [page], 1, size),
                ("GET /v1/services?limit=1000", [page], 4, size),
                ("GET /v1/services/{id}/events", [f"/v1/services/{i}/events" for i in ids], 8,
                 f"{len(ids)} ids in turn")]
        if tokens:
            plan.append(("GET /v1/push/{token}", [f"/v1/push/{t}" for t in tokens], 8,
                         f"{len(tokens)} heartbeat tokens in turn"))
        for name, paths, connections, note in plan:
            script = wrk_script(os.path.join(workdir, "api.lua"), paths)
            usage = Usage(vigil.proc.pid)
            result = run_wrk(vigil.url("/"), script, seconds, connections)
            usage.stop()
            rows.append({"endpoint": name, "backend": backend, "connections": connections,
                         "rps": result["rps"],
                         "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"],
                         "max_ms": result["max_ms"],
                         "errors": result["status_errors"] + result["socket_errors"]
                         + result["timeouts"],
                         "requests": result["requests"],
                         "window_ms": (usage.wall_start_ms, usage.wall_stop_ms),
                         "vigil_cpu_percent": usage.percent,
                         "machine_cpu_percent": usage.machine_percent,
                         "note": note})
        if not tokens:
            rows.append({"endpoint": "GET /v1/push/{token}", "backend": backend,
                         "error": "no push tokens: this vigil has no heartbeat services"})
        rss, _ = vigil.memory_mb()
        vigil.stop()
        ticks, counted = vigil.db_counts()
        for r in rows:  # from the database, now that every tick is in it
            r["rss_mb"] = rss
            if "window_ms" in r:
                r["ticks_per_s_meanwhile"] = (vigil.db_window(*r["window_ms"])[0]
                                              / ((r["window_ms"][1] - r["window_ms"][0]) / 1000))
    return {"rows": rows, "lost_ticks": counted - ticks}


def section_storage(p, build_dir, workdir):
    """The store and the Writer in isolation, for a few service counts, on each backend one after
    the other at each count: how many distinct services a batch touches decides how many B-tree
    pages each commit rewrites. A backend that cannot run here (no PostgreSQL 15) is reported."""
    tool = os.path.join(build_dir, "bench", "vigil_bench_storage")
    runs = []
    skipped = []
    for count in p["storage_services"]:
        for backend in p["backends"]:
            directory = os.path.join(workdir, "storage", f"{backend}-{count}")
            proc = CHILDREN.start("vigil_bench_storage", [
                tool, "--dir", directory, "--backend", backend, "--seconds",
                str(p["storage_seconds"]), "--services", str(count)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            # PostgreSQL: initdb, and the services made one statement each, take a while more.
            out, err = communicate(proc, p["storage_seconds"] * 10 + 120 + count // 100)
            shutil.rmtree(directory, ignore_errors=True)
            if proc.returncode == 77:
                skipped.append(f"{backend}: {err.strip()[:300]}")
                continue
            if proc.returncode != 0:
                raise BenchError(f"vigil_bench_storage --backend {backend} failed: "
                                 f"{err.strip()[:300]}")
            runs.append(json.loads(out))
    return {"rows": runs, "skipped": sorted(set(skipped))}


def section_history(p, build_dir, workdir, postgres):
    """Months of history seeded straight into a SQLite database, copied into PostgreSQL as
    `vigil migrate` copies it, then the time-series reads timed on each: in the tool, through the
    Store, and through `vigil api` over HTTP. Needs about 1.9 GB of disk at 1,000 services x 30
    days for SQLite, and more for PostgreSQL."""
    tool = os.path.join(build_dir, "bench", "vigil_bench_seed_history")
    db = os.path.join(workdir, "history.db")
    argv = [tool, "--db", db, "--services", str(p["history_services"]), "--days",
            str(p["history_days"]), "--interval", "60"]
    skipped = []
    url = None
    if "postgres" in p["backends"]:
        if isinstance(postgres, str):
            skipped.append(f"postgres: {postgres}")
        else:
            url = postgres.new_database("history")
            argv += ["--database-url", url]
    proc = CHILDREN.start("vigil_bench_seed_history", argv, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    out, err = communicate(proc, 3600)
    if proc.returncode != 0:
        raise BenchError(f"vigil_bench_seed_history failed: {err.strip()[:300]}")
    rows = [json.loads(line) for line in out.splitlines() if line.startswith('{"backend"')]
    try:
        for r in rows:
            database = ({"postgres": postgres, "database_url": url} if r["backend"] == "postgres"
                        else {"db_file": db})
            r.update(history_api_reads(p, build_dir, workdir, r["backend"], database))
    finally:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(db + suffix)
    return {"services": p["history_services"], "days": p["history_days"], "rows": rows,
            "skipped": skipped}


def history_api_reads(p, build_dir, workdir, backend, database):
    """GET /v1/uptime?window=30d and one service's /metrics?window=30d as a client sees them,
    from `vigil api` on the seeded database: the first call of the process, then the best and
    worst of the next history_http_repeats."""
    out = {}
    with Vigil(build_dir, workdir, f"history-{backend}", None, 1000, p["startup_timeout"],
               command="api", **database) as vigil:
        one = min(vigil.service_ids())
        for key, path in (("http_uptime_30d", "/v1/uptime?window=30d"),
                          ("http_metrics_30d", f"/v1/services/{one}/metrics?window=30d")):
            took = []
            for _ in range(1 + p["history_http_repeats"]):
                started = time.monotonic()
                status, body = http_get(vigil.url(path))
                took.append((time.monotonic() - started) * 1000)
                if status != 200:
                    raise BenchError(f"{backend}: GET {path}: {status} {body[:200]!r}")
            out[key + "_first_ms"] = took[0]
            out[key + "_best_ms"], out[key + "_worst_ms"] = min(took[1:]), max(took[1:])
        vigil.stop()
    return out


def section_micro(p, build_dir):
    tool = os.path.join(build_dir, "bench", "vigil_bench_micro")
    if not os.access(tool, os.X_OK):
        raise MissingTool("vigil_bench_micro was not built (libbenchmark-dev missing)")
    argv = [tool, f"--benchmark_min_time={p['micro_min_time']}", "--benchmark_format=json"]
    if p["micro_filter"]:
        argv.append(f"--benchmark_filter={p['micro_filter']}")
    proc = CHILDREN.start("vigil_bench_micro", argv, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    out, err = communicate(proc, 300)
    if proc.returncode != 0:
        raise BenchError(f"vigil_bench_micro failed: {err.strip()[:300]}")
    rows = []
    for b in json.loads(out)["benchmarks"]:
        rows.append({"name": b["name"], "cpu_time": b["cpu_time"], "unit": b["time_unit"],
                     "bytes": b.get("bytes"),
                     "heap_bytes_per_service": b.get("heap_bytes_per_service")})
    return {"rows": rows}


# ---- output ----

def fmt(value, digits=1, unit=""):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return "inf" if math.isinf(value) else "-"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 100):
        return f"{int(value):,}{unit}"
    return f"{value:,.{digits}f}{unit}"


def table(title, headers, rows):
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    lines = [f"\n## {title}\n", "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for r in cells:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
    print("\n".join(lines), flush=True)


def print_engine(e):
    rows = []
    for r in e["rows"]:
        rows.append([r["engine"], fmt(r["probes_per_s"], 0), fmt(r["cpu_ms_per_probe"], 3),
                     fmt(r.get("rss_mb")), fmt(r.get("ok_ratio", 0) * 100, 1, " %")])
    table("Probe engine (HTTP GET, fresh connection per probe, same nginx)",
          ["engine", "probes/s", "CPU-ms/probe", "RSS MB", "ok"], rows)
    for r in e["rows"]:
        if r["engine"].startswith("vigil"):
            print(f"\n{r['engine']}: {fmt(r['cpu_percent'])} % of a core, every probe a tick "
                  f"in the database (lost ticks: {r['lost_ticks']}); nginx {fmt(r['nginx_cpu_percent'])} % of a core, "
                  f"machine {fmt(r['machine_cpu_percent'])} % busy (all cores)")
    print(f"\nCPU-ms per probe, vigil's cheapest over blackbox_exporter: "
          f"{fmt(e['vigil_over_blackbox_cpu'], 3)}; over the bare loop: "
          f"{fmt(e['vigil_over_bare_cpu'], 2)}")


def print_scale(s):
    rows = []
    for r in s["rows"]:
        if "error" in r:
            rows.append([f"{r['label']}", fmt(r["services"])] + [r["error"]] + [""] * 11)
            continue
        rows.append([r["label"], fmt(r["services"]), fmt(r["interval_s"]),
                     f"{fmt(r['lateness_p50_s'] * 1000 if r['lateness_p50_s'] is not None else None, 1)}"
                     f" / {fmt(r['lateness_p99_s'] * 1000 if r['lateness_p99_s'] is not None else None, 1)}"
                     f" / ≤{fmt(r['lateness_max_le_s'] * 1000 if r['lateness_max_le_s'] is not None else None, 0)}",
                     fmt(r["cpu_percent"]),
                     f"{fmt(r['nginx_cpu_percent'], 0)} / {fmt(r['machine_cpu_percent'], 0)}",
                     fmt(r["rss_mb"]), fmt(r["rss_kb_per_service"], 2),
                     f"{fmt(r['probes_per_s'], 0)} / {fmt(r['expected_per_s'], 0)}",
                     f"{fmt(r['queue_end'], 0)} (≤{fmt(r['queue_max_seen'], 0)})",
                     f"{fmt(r['lost_ticks'], 0)} ({fmt(r['ticks_in_db'], 0)} in DB)"
                     if r["lost_ticks"] is not None else "unknown: see below",
                     fmt(r["skipped"], 0), fmt(r["startup_s"]),
                     f"{fmt(r['metrics_scrape_s'], 2)} s, {fmt(r['metrics_mb'], 1)} MB"])
    notes = [f"{r['label']} {fmt(r['services'])}: shutdown failed: {r['shutdown_error']}"
             for r in s["rows"] if r.get("shutdown_error")]
    table("Scale (vigil run, all services probed over the nginx ports; 5 % answer 503)",
          ["run", "services", "interval s", "lateness ms p50 / p99 / max", "vigil CPU %",
           "nginx % / machine %", "RSS MB",
           "RSS KB/svc", "ticks/s written / due", "writer queue end (max)",
           "lost ticks", "skipped slots", "start-up s", "/metrics scrape"], rows)
    for note in notes:
        print(f"\n{note}")


def print_api(a):
    rows = []
    for r in a["rows"]:
        if "error" in r:
            rows.append([r["endpoint"], r.get("backend", "sqlite"), r["error"]] + [""] * 8)
            continue
        rows.append([r["endpoint"], r.get("backend", "sqlite"), fmt(r["connections"]),
                     fmt(r["rps"], 0), fmt(r["p50_ms"], 2),
                     fmt(r["p99_ms"], 2), fmt(r["max_ms"], 1), fmt(r["errors"], 0),
                     fmt(r["ticks_per_s_meanwhile"], 0),
                     f"{fmt(r['vigil_cpu_percent'], 0)} / {fmt(r['machine_cpu_percent'], 0)}",
                     r["note"]])
    table(f"API ({a['services']} services, {a['heartbeats']} of them heartbeats; the rest probed "
          f"every {a['interval_s']} s meanwhile)",
          ["endpoint", "backend", "conns", "req/s", "p50 ms", "p99 ms", "max ms", "errors",
           "ticks/s (probes + beats)", "vigil CPU % / machine %", "note"], rows)
    for reason in a.get("skipped", []):
        print(f"skipped: {reason}")


def print_history(h):
    rows_by = {r["backend"]: r for r in h["rows"]}
    backends = [b for b in ("sqlite", "postgres") if b in rows_by]

    def both(render):
        return [render(rows_by[b]) for b in backends]

    def best_worst(key):
        return lambda r: f"{fmt(r[key + '_best_ms'], 1)} / {fmt(r[key + '_worst_ms'], 1)} ms"

    rows = [["loading (SQLite: seeded; PostgreSQL: copied by vigil migrate, VACUUM, CHECKPOINT)",
             *both(lambda r: fmt(r.get("load_s"), 1) + " s")],
            ["database size (SQLite: the file; PostgreSQL: the tables' pg_total_relation_size)",
             *both(lambda r: fmt(r["db_mib"], 1) + " MiB")],
            ["database bytes per tick (size / ticks)",
             *both(lambda r: fmt(r["db_bytes_per_tick"], 1))]]
    for key, what in (("metrics_30d", "metrics?window=30d, one service (exact), Store"),
                      ("uptime_30d_cold", "/v1/uptime?window=30d, first call of a process, Store"),
                      ("uptime_30d_first", "/v1/uptime?window=30d, first call in an hour, Store"),
                      ("uptime_30d", "/v1/uptime?window=30d, later calls, Store"),
                      ("exact_30d_all", "every service over exactly 30 d, uncached, Store")):
        rows.append([what + " (best / worst)", *both(best_worst(key))])
    for key, what in (("http_uptime_30d", "GET /v1/uptime?window=30d"),
                      ("http_metrics_30d", "GET /v1/services/{id}/metrics?window=30d")):
        rows.append([f"{what} from vigil api, first call", *both(
            lambda r: fmt(r[key + "_first_ms"], 1) + " ms")])
        rows.append([f"{what} from vigil api, later calls (best / worst)",
                     *both(best_worst(key))])
    first = h["rows"][0] if h["rows"] else {}
    table(f"History: {fmt(h['services'], 0)} services x {h['days']} days at 60 s "
          f"({fmt(first.get('ticks'), 0)} ticks; {fmt(first.get('ticks_in_window'), 0)} per "
          "service in the 30-day window)", ["measure", *backends], rows)
    for reason in h.get("skipped", []):
        print(f"skipped: {reason}")


def print_storage(s):
    rows = []
    for r in s["rows"]:
        for key, path in (("direct", f"Store::apply, batches of {r['batch']}"),
                          ("writer", "Writer thread (as vigil runs it)")):
            x = r[key]
            steady = x.get("steady_bytes_per_tick", -1)
            rows.append([fmt(r["services"]), r.get("backend", "sqlite"), path,
                         fmt(x["ticks_per_s"], 0), fmt(x["ticks"], 0),
                         fmt(x["cpu_us_per_tick"], 2), fmt(x.get("server_cpu_us_per_tick", 0), 2),
                         fmt(x["written_per_tick"], 0),
                         fmt(steady, 1) if steady >= 0 else "-"])
    interval = s["rows"][0].get("interval_s", 60) if s["rows"] else 60
    table(f"Storage in isolation (SQLite in WAL mode; PostgreSQL 15 on this machine over loopback, "
          f"synchronous commit on; each service ticking every {fmt(interval, 0)} s of tick time, "
          "in the order a runner finishes them)",
          ["services", "backend", "path", "ticks/s", "ticks", "CPU µs/tick", "server CPU µs/tick",
           "bytes written/tick", "DB bytes/tick (steady)"], rows)
    print("\nCPU µs/tick: this process (making the records included); server CPU: PostgreSQL's "
          "processes. Bytes written: SQLite's writes, PostgreSQL's WAL. DB bytes/tick (steady): "
          "database growth per tick after every service's first tick (its metric, event and "
          "rollup rows exist); '-' when the run was too short for that.")
    for reason in s.get("skipped", []):
        print(f"skipped: {reason}")


def print_micro(m):
    rows = [[r["name"], fmt(r["cpu_time"], 1 if r["cpu_time"] >= 10 else 3, " " + r["unit"]),
             fmt(r["bytes"], 0), fmt(r["heap_bytes_per_service"], 0)] for r in m["rows"]]
    table("Micro-benchmarks (Google Benchmark, CPU time per operation)",
          ["benchmark", "CPU time", "output bytes", "heap bytes per service"], rows)


def targets(results):
    """The targets against what this run measured: (target, measured, met)."""
    out = []
    e = results.get("engine")
    if e and not isinstance(e, str) and any(r["engine"].startswith("vigil") for r in e["rows"]):
        ratio = e["vigil_over_blackbox_cpu"]
        out.append(("CPU-ms per probe ≤ 0.15 × blackbox_exporter's", fmt(ratio, 3) + " ×",
                    ratio is not None and ratio <= 0.15))
        best = max(r["probes_per_s"] for r in e["rows"] if r["engine"].startswith("vigil"))
        out.append(("≥ 10,000 probes/s by one vigil process", fmt(best, 0), best >= 10000))
    s = results.get("scale")
    if s and not isinstance(s, str):
        for r in s["rows"]:
            if r.get("label") == "interval" and r["services"] == 100000 and "error" not in r:
                out.append(("100k at 60 s: p99 lateness < 1 s", fmt(r["lateness_p99_s"], 3) + " s",
                            r["lateness_p99_s"] is not None and r["lateness_p99_s"] < 1))
                out.append(("100k at 60 s: under 1 core", fmt(r["cpu_percent"]) + " %",
                            r["cpu_percent"] < 100))
                out.append(("100k at 60 s: RSS < 300 MB", fmt(r["rss_mb"]) + " MB (peak "
                            + fmt(r["hwm_mb"]) + " with the scrape)", r["rss_mb"] < 300))
                out.append(("100k at 60 s: zero lost ticks", fmt(r["lost_ticks"], 0),
                            r["lost_ticks"] == 0))
                out.append(("100k at 60 s: writer keeps up (queue at the end)",
                            fmt(r["queue_end"], 0), r["queue_end"] < 10000))
            if r.get("label") == "stretch":
                ok = ("error" not in r and r["lateness_p99_s"] is not None
                      and r["lateness_p99_s"] < 1 and r["lost_ticks"] == 0)
                out.append(("stretch: 1M at 120 s", r.get("error") or
                            f"p99 {fmt(r['lateness_p99_s'], 3)} s, {fmt(r['cpu_percent'])} % CPU, "
                            f"{fmt(r['rss_mb'])} MB, lost {fmt(r['lost_ticks'], 0)}", ok))
    a = results.get("api")
    if a and not isinstance(a, str):
        for r in a["rows"]:
            on = r.get("backend", "sqlite")
            if r["endpoint"].startswith("GET /v1/services?") and "error" not in r:
                out.append((f"{r['endpoint']} ({fmt(a['services'])}, {r['connections']} "
                            f"client(s), {on}) p99 < 100 ms", fmt(r["p99_ms"], 1) + " ms",
                            r["p99_ms"] < 100))
            if r["endpoint"].startswith("GET /v1/push"):
                if "error" in r:
                    out.append((f"push ≥ 20,000 req/s, p99 < 20 ms ({on})", r["error"], False))
                else:
                    out.append((f"push ≥ 20,000 req/s, p99 < 20 ms ({on})",
                                f"{fmt(r['rps'], 0)} req/s, p99 {fmt(r['p99_ms'], 1)} ms",
                                r["rps"] >= 20000 and r["p99_ms"] < 20))
    st = results.get("storage")
    if st and not isinstance(st, str):
        for r in st["rows"]:
            out.append((f"writer ≥ 200,000 ticks/s in isolation ({fmt(r['services'])} services)",
                        f"{fmt(r['writer']['ticks_per_s'], 0)} (Writer), "
                        f"{fmt(r['direct']['ticks_per_s'], 0)} (apply)",
                        r["writer"]["ticks_per_s"] >= 200000))
    h = results.get("history")
    if h and not isinstance(h, str):
        scope = f"{fmt(h['services'], 0)} services x {h['days']} days"
        for r in h["rows"]:
            on = f"({scope}, {r['backend']})"
            out.append((f"database < 2 GB {on}", fmt(r["db_mib"] * 1.048576, 0) + " MB",
                        r["db_mib"] * 1048576 < 2e9))
            for key, what, bound in (
                    ("metrics_30d", "metrics?window=30d", 50),
                    ("uptime_30d_cold", "/v1/uptime?window=30d, first call of a process", 50),
                    ("uptime_30d_first", "/v1/uptime?window=30d, first call in an hour", 50),
                    ("uptime_30d", "/v1/uptime?window=30d, later calls", 50),
                    ("exact_30d_all", "every service over exactly 30 days, uncached", 100)):
                out.append((f"{what} < {bound} ms {on}", fmt(r[key + "_worst_ms"], 1) +
                            " ms (worst)", r[key + "_worst_ms"] < bound))
            first = r["http_uptime_30d_first_ms"]
            out.append((f"GET /v1/uptime?window=30d from vigil api, first call, < 100 ms {on}",
                        fmt(first, 1) + " ms", first < 100))
    return out


def machine_line():
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    except OSError:
        model = "?"
    load = os.getloadavg()
    return (f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} cores ({model}), "
            f"{available_memory_mb() / 1024:.1f} GB available, Linux {platform.release()}, "
            f"load average {load[0]:.2f} at start")


def interrupt(*_):
    raise KeyboardInterrupt


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", required=True, help="CMake build directory (Release)")
    parser.add_argument("--smoke", action="store_true", help="seconds, small N: checks it works")
    parser.add_argument("--only",
                        help="comma-separated sections: engine,scale,api,storage,history,micro")
    parser.add_argument("--scale", help="comma-separated service counts for the scale section")
    parser.add_argument("--huge", type=int, help="stretch service count (0: skip)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a run parameter (see FULL in this file), e.g. "
                             "engine_seconds=5; repeatable")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    p = dict(SMOKE if args.smoke else FULL)
    if args.scale:
        p["scale"] = [int(n) for n in args.scale.split(",") if n]
    if args.huge is not None:
        p["huge"] = args.huge
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in p:
            parser.error(f"--set: unknown parameter {key!r} (known: {', '.join(sorted(p))})")
        # Numbers and lists as JSON (0.5, [100, 1000]); anything else as text (engine_parts=vigil).
        p[key] = json.loads(value) if value and (value[0] in "[{\"" or value[0].isdigit()) else value
    sections = (args.only or "engine,scale,api,storage,history,micro").split(",")
    build_dir = os.path.abspath(args.build_dir)
    raise_fd_limit()
    # SIGTERM (ctest's timeout, a kill) unwinds like Ctrl-C, so the finally below stops children.
    signal.signal(signal.SIGTERM, interrupt)

    workdir = tempfile.mkdtemp(prefix="vigil-bench-")
    results = {"machine": machine_line(), "smoke": args.smoke}
    print(f"# vigil benchmark{' (smoke)' if args.smoke else ''}\n\n{results['machine']}", flush=True)
    missing, failed = [], []
    nginx = None
    # The PostgreSQL server of the api and history sections: a Postgres once started, the reason
    # there is none (the section then runs on SQLite alone and says so), or None before.
    postgres = None
    targets_started = contextlib.ExitStack()  # nginx and PostgreSQL, shared by the sections
    try:
        for section in sections:
            log(f"section {section}")
            try:
                if section in ("engine", "scale", "api") and nginx is None:
                    nginx = targets_started.enter_context(Nginx(workdir, p["nginx_ports"]))
                if (section in ("api", "history") and "postgres" in p["backends"]
                        and postgres is None):
                    try:
                        postgres = targets_started.enter_context(Postgres(build_dir, workdir))
                    except MissingTool as e:  # reported by the sections, as storage's is
                        postgres = str(e)
                if section == "engine":
                    results["engine"] = section_engine(p, build_dir, workdir, nginx)
                    print_engine(results["engine"])
                elif section == "scale":
                    results["scale"] = section_scale(p, build_dir, workdir, nginx)
                    print_scale(results["scale"])
                elif section == "api":
                    results["api"] = section_api(p, build_dir, workdir, nginx, postgres)
                    print_api(results["api"])
                elif section == "storage":
                    results["storage"] = section_storage(p, build_dir, workdir)
                    print_storage(results["storage"])
                elif section == "history":
                    results["history"] = section_history(p, build_dir, workdir, postgres)
                    print_history(results["history"])
                elif section == "micro":
                    results["micro"] = section_micro(p, build_dir)
                    print_micro(results["micro"])
                else:
                    raise BenchError(f"unknown section {section}")
            except MissingTool as e:
                missing.append(f"{section}: {e}")
                results[section] = f"skipped: {e}"
                print(f"\n## {section}: skipped: {e}", flush=True)
            except BenchError as e:
                failed.append(f"{section}: {e}")
                results[section] = f"failed: {e}"
                print(f"\n## {section}: FAILED: {e}", flush=True)
    except KeyboardInterrupt:
        failed.append("interrupted")
    finally:
        targets_started.close()
        CHILDREN.stop_all()

    checks = targets(results)
    if checks and not args.smoke:  # the smoke run's small N and seconds say nothing about them
        table("Targets", ["target", "measured", "met"],
              [[t, m, "yes" if ok else "NO"] for t, m, ok in checks])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    if args.keep or failed:
        print(f"\nwork directory (logs, databases): {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)

    if args.smoke:
        failed += smoke_failures(results)
    for line in missing:
        print(f"skipped: {line}")
    for line in failed:
        print(f"FAILED: {line}")
    if failed:
        return 1
    return SKIPPED if missing else 0


def smoke_failures(results):
    """What the smoke run checks: every part produced figures that make sense. No speed bar:
    a loaded CI machine is not a benchmark machine."""
    problems = []
    e = results.get("engine")
    if isinstance(e, dict):
        for r in e["rows"]:
            # Most probes must succeed; a slow (sanitizer) build may time a few out at 0.1 s.
            if not r["probes_per_s"] > 0 or r.get("ok_ratio", 1) < 0.5:
                problems.append(f"engine: {r['engine']}: {r['probes_per_s']:.0f} probes/s, "
                                f"{r.get('ok_ratio', 0) * 100:.0f} % ok")
            if r.get("lost_ticks"):
                problems.append(f"engine: {r['lost_ticks']} lost ticks")
    s = results.get("scale")
    if isinstance(s, dict):
        for r in s["rows"]:
            if "error" in r:
                continue
            if r["lost_ticks"] != 0 or not r["ticks_in_db"] or not r["probes_per_s"]:
                problems.append(f"scale {r['label']} {r['services']}: lost {r['lost_ticks']}, "
                                f"{r['ticks_in_db']} ticks in DB")
            if r["lateness_p99_s"] is None:
                problems.append(f"scale {r['label']}: no lateness observed")
    a = results.get("api")
    if isinstance(a, dict):
        for r in a["rows"]:
            if "error" in r or r["requests"] <= 0 or r["errors"] > 0:
                problems.append(f"api: {r['endpoint']}: {r.get('error') or r}")
        if a["lost_ticks"]:
            problems.append(f"api: {a['lost_ticks']} lost ticks")
    st = results.get("storage")
    if isinstance(st, dict):
        for r in st["rows"]:
            if r["direct"]["ticks"] <= 0 or r["writer"]["ticks"] <= 0 or r["writer"]["dropped"]:
                problems.append(f"storage: {r}")
    h = results.get("history")
    if isinstance(h, dict):
        for r in h["rows"]:
            if not r["ticks"] or not r["db_bytes_per_tick"] > 0 or not r["ticks_in_window"]:
                problems.append(f"history: {r['backend']}: {r}")
        if not h["rows"]:
            problems.append("history: no backend measured")
    m = results.get("micro")
    if isinstance(m, dict) and not m["rows"]:
        problems.append("micro: no benchmark ran")
    return problems


if __name__ == "__main__":
    sys.exit(main())
