#!/usr/bin/env python3
"""Crash safety: kill -9 vigil at random moments, restart it, and check the database.

Starts the real vigil binary on a fresh database with a few hundred services probing local
targets that flip between up and down, SIGKILLs it at random moments (seeded; the seed is
printed, pass --seed to replay), restarts it each time, and after every kill reads the database
straight from SQLite (read-only, so vigil itself does the WAL recovery on its next start):

  - PRAGMA integrity_check is ok, and no foreign key is dangling;
  - every service that has ticks has exactly one open event, a service without ticks none;
  - a service's events are contiguous: ordered by start, each date_ended equals the next
    date_started, kinds alternate, no event ends before it starts;
  - every event starts at one of the service's ticks, and the open event's kind is the state of
    its newest tick (no event without the tick that caused it, and no tick without its event);
  - service_metrics counts equal the stored ticks (tick_count, up_count, down_count) and
    last_tick_at is the newest tick's ts: ticks and metrics were committed together;
  - every stored tick is whole (up is 0/1, a down tick has its error, an up tick its status);
  - no committed tick is ever lost: each service's tick count never shrinks from one kill to
    the next.

A last run ends with SIGTERM and must exit 0; the checks run once more. The whole run is bounded
(--kills, --max-run-seconds) to about a minute. Exit code 0 when every check holds, 1 otherwise.
Only loopback is used. Needs python3 (standard library only).
"""

import argparse
import http.server
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time


# --- flipping targets --------------------------------------------------------------------------

class FlipHandler(http.server.BaseHTTPRequestHandler):
    """GET /flip/<period_ms>/<phase_ms>: 200 or 503, switching every period_ms (offset by phase_ms,
    so services change state at different moments)."""

    protocol_version = "HTTP/1.0"  # one request per connection, as vigil probes

    def do_GET(self):  # noqa: N802 (http.server's naming)
        parts = self.path.strip("/").split("/")
        try:
            period, phase = int(parts[1]), int(parts[2])
            up = ((int(time.time() * 1000) + phase) // period) % 2 == 0
        except (IndexError, ValueError):
            self.send_error(404)
            return
        body = b"up" if up else b"down"
        self.send_response(200 if up else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class FlipServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # a few hundred probes may connect at the same instant

    def handle_error(self, request, client_address):
        pass  # a probe that timed out, or a vigil killed mid-request, hung up: expected here


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- vigil ---------------------------------------------------------------------------------------

class Vigil:
    def __init__(self, binary, workdir, run_index):
        env = dict(os.environ)
        env.update({
            "DB_FILE": os.path.join(workdir, "vigil.db"),
            "SERVICES_FILE": os.path.join(workdir, "services.json"),
            "API_HOST": "127.0.0.1",
            "API_PORT": "0",  # any free port: the API runs too, but is not what is tested here
            "LOG_LEVEL": "warn",
            "RETENTION_DAYS": "0",  # keep every tick: metric counts must equal stored ticks
        })
        self.log_path = os.path.join(workdir, f"run-{run_index}.log")
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen([binary, "run"], cwd=workdir, env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT)

    def kill(self):
        # SIGKILL while still running; a vigil that already exited is itself a failure.
        code = self.process.poll()
        if code is not None:
            raise CheckFailed(f"vigil exited on its own with code {code} before the kill; "
                              f"log: {self.tail()}")
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.log.close()

    def stop(self, timeout):
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise CheckFailed(f"vigil did not stop within {timeout} s of SIGTERM")
        finally:
            self.log.close()
        if code != 0:
            raise CheckFailed(f"vigil exited with code {code} after SIGTERM; log: {self.tail()}")

    def tail(self):
        with open(self.log_path, "rb") as f:
            return f.read()[-2000:].decode(errors="replace")


# --- invariants ----------------------------------------------------------------------------------

class CheckFailed(Exception):
    pass


def check_database(db_path, previous_counts):
    """Checks every invariant; returns {service_id: tick count} and a summary dict."""
    if not os.path.exists(db_path):
        return {}, {"ticks": 0, "events": 0}  # killed before the database was created
    # Read-only: the checker must not checkpoint or repair anything vigil left behind.
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return _check(db, previous_counts)
    finally:
        db.close()


def _check(db, previous_counts):
    problems = []

    def fail(message):
        problems.append(message)

    integrity = db.execute("PRAGMA integrity_check").fetchall()
    if integrity != [("ok",)]:
        fail(f"integrity_check: {integrity[:5]}")
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "service_ticks" not in tables:
        return {}, {"ticks": 0, "events": 0}  # killed before the first migration committed
    dangling = db.execute("PRAGMA foreign_key_check").fetchall()
    if dangling:
        fail(f"foreign_key_check: {dangling[:5]}")

    # A tick row is whole: nothing of a tick can be half there. (Every service here is an HTTP
    # one with the default thresholds, so an up tick has its status code and an event opens at
    # each change of a tick's up/down.)
    broken = db.execute(
        "SELECT service_id, ts, up, status_code, error FROM service_ticks "
        "WHERE up NOT IN (0, 1) OR response_us < 0 "
        "   OR region_id NOT IN (SELECT id FROM regions) "
        "   OR (up = 0 AND (error IS NULL OR error = '')) "
        "   OR (up = 1 AND status_code IS NULL) LIMIT 5").fetchall()
    if broken:
        fail(f"incomplete ticks: {broken}")

    ticks = {}  # service_id -> (count, up, down, first ts, last ts)
    for sid, count, ups, last in db.execute(
            "SELECT service_id, COUNT(*), SUM(up), MAX(ts) FROM service_ticks GROUP BY service_id"):
        ticks[sid] = (count, ups, count - ups, last)
    metrics = {}
    for sid, count, ups, downs, last in db.execute(
            "SELECT service_id, tick_count, up_count, down_count, last_tick_at "
            "FROM service_metrics"):
        metrics[sid] = (count, ups, downs, last)
    for sid in set(ticks) | set(metrics):
        if ticks.get(sid) != metrics.get(sid):
            fail(f"service {sid}: ticks (count, up, down, last ts) {ticks.get(sid)} but "
                 f"metrics {metrics.get(sid)}")

    # The rollups are written in the same transactions as the ticks they summarise: every
    # resolution counts exactly the stored ticks (no retention runs in this test). A minute with
    # one tick has no minute row: that tick stands for it.
    for table in ("service_rollups_hour", "service_rollups_day"):
        for sid, count, ups in db.execute(
                f"SELECT service_id, SUM(count), SUM(up) FROM {table} GROUP BY service_id"):
            if (count, ups, count - ups) != ticks.get(sid, (0, 0, 0))[:3]:
                fail(f"service {sid}: {table} counts {count} ticks ({ups} up) but the ticks "
                     f"table has {ticks.get(sid)}")
    lone = dict(db.execute(
        "SELECT t.service_id, COUNT(*) FROM service_ticks t WHERE NOT EXISTS (SELECT 1 FROM "
        "service_rollups_minute m WHERE m.service_id = t.service_id "
        "AND m.bucket = t.ts - t.ts % 60000) GROUP BY t.service_id").fetchall())
    in_rows = dict(db.execute(
        "SELECT service_id, SUM(count) FROM service_rollups_minute GROUP BY service_id").fetchall())
    for sid, (count, _, _, _) in ticks.items():
        if lone.get(sid, 0) + in_rows.get(sid, 0) != count:
            fail(f"service {sid}: minute rows count {in_rows.get(sid, 0)} and lone ticks "
                 f"{lone.get(sid, 0)}, but it has {count} ticks")

    for sid, before in previous_counts.items():
        now = ticks.get(sid, (0,))[0]
        if now < before:
            fail(f"service {sid}: {before} ticks after an earlier kill, only {now} now")

    events = {}
    for sid, kind, start, end in db.execute(
            "SELECT service_id, event, date_started, date_ended FROM service_events "
            "ORDER BY service_id, date_started, id"):
        events.setdefault(sid, []).append((kind, start, end))
    services = [r[0] for r in db.execute("SELECT id FROM services")]
    tick_times = {}
    for sid, ts, up in db.execute(
            "SELECT service_id, ts, up FROM service_ticks ORDER BY service_id, ts, seq"):
        tick_times.setdefault(sid, {})[ts] = up  # the last tick at a given ms wins, as latest
    for sid in services:
        evs = events.get(sid, [])
        if sid not in ticks:
            if evs:
                fail(f"service {sid}: {len(evs)} events but no ticks")
            continue
        open_events = [e for e in evs if e[2] is None]
        if len(open_events) != 1:
            fail(f"service {sid}: {len(open_events)} open events, expected exactly one")
            continue
        if evs[-1][2] is not None:
            fail(f"service {sid}: the open event is not the latest one: {evs[-3:]}")
        for (kind, start, end), (next_kind, next_start, _) in zip(evs, evs[1:]):
            if end != next_start:
                fail(f"service {sid}: event ending {end} followed by one starting {next_start}")
            if kind == next_kind:
                fail(f"service {sid}: two {kind} events in a row at {next_start}")
        for kind, start, end in evs:
            if end is not None and end < start:
                fail(f"service {sid}: event {start}..{end} ends before it starts")
            if start not in tick_times[sid]:
                fail(f"service {sid}: {kind} event starting at {start} has no tick at that time")
        newest = tick_times[sid][ticks[sid][3]]
        expected = "uptime" if newest == 1 else "downtime"
        if open_events[0][0] != expected:
            fail(f"service {sid}: open event is {open_events[0][0]} but the newest tick says "
                 f"{expected}")
        if len(problems) > 20:
            break

    if problems:
        raise CheckFailed("\n  ".join(problems[:20]))
    counts = {sid: t[0] for sid, t in ticks.items()}
    summary = {
        "ticks": sum(counts.values()),
        "events": sum(len(e) for e in events.values()),
        "most_events": max((len(e) for e in events.values()), default=0),
    }
    return counts, summary


# --- the test ------------------------------------------------------------------------------------

def services_file(flip_port, refused_port, count, rng):
    services = []
    for i in range(count):
        interval = rng.choice([0.2, 0.5, 0.5, 1.0])
        if i % 10 == 9:  # always down, without an HTTP answer
            url = f"http://127.0.0.1:{refused_port}/"
        else:  # flips every 0.3-3 s, each at its own phase
            url = f"http://127.0.0.1:{flip_port}/flip/{rng.randint(300, 3000)}/{rng.randint(0, 3000)}"
        services.append({"name": f"svc-{i:03d}", "url": url, "interval_seconds": interval,
                         "timeout_seconds": min(interval, 0.5)})
    return services


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vigil", required=True, help="path to the vigil binary")
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: random)")
    parser.add_argument("--services", type=int, default=300)
    parser.add_argument("--kills", type=int, default=15)
    parser.add_argument("--max-run-seconds", type=float, default=4.0,
                        help="longest a run lives before its kill (each is uniform in 0.05..this)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    rng = random.Random(seed)
    print(f"crash test: seed {seed} (replay with --seed {seed}), {args.services} services, "
          f"{args.kills} kills", flush=True)

    server = FlipServer(("127.0.0.1", 0), FlipHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    workdir = tempfile.mkdtemp(prefix="vigil-crash-")
    db_path = os.path.join(workdir, "vigil.db")
    with open(os.path.join(workdir, "services.json"), "w") as f:
        json.dump(services_file(server.server_address[1], closed_port(), args.services, rng), f)

    started = time.monotonic()
    counts = {}
    summary = {"ticks": 0, "events": 0, "most_events": 0}
    kills_with_ticks = 0
    try:
        for run in range(args.kills):
            vigil = Vigil(args.vigil, workdir, run)
            time.sleep(rng.uniform(0.05, args.max_run_seconds))
            vigil.kill()
            ticks_before = summary["ticks"]
            counts, summary = check_database(db_path, counts)
            if summary["ticks"] > ticks_before:
                kills_with_ticks += 1
            print(f"  kill {run + 1}: {summary['ticks']} ticks, {summary['events']} events "
                  f"({time.monotonic() - started:.1f} s)", flush=True)

        vigil = Vigil(args.vigil, workdir, args.kills)
        time.sleep(2.0)
        vigil.stop(timeout=20)
        counts, summary = check_database(db_path, counts)

        # The checks above only mean something if the runs wrote ticks and events flipped.
        if kills_with_ticks < args.kills // 2:
            raise CheckFailed(f"only {kills_with_ticks} of {args.kills} runs wrote ticks before "
                              "their kill: the test covered too little")
        if summary["most_events"] < 3:
            raise CheckFailed("no service changed state twice: the targets did not flip")
    except CheckFailed as e:
        print(f"FAILED (seed {seed}, work directory {workdir} kept):\n  {e}", file=sys.stderr)
        return 1
    finally:
        server.shutdown()

    print(f"crash test: ok: {args.kills} kills ({kills_with_ticks} after ticks were written) and a "
          f"clean stop, {summary['ticks']} ticks and {summary['events']} events over "
          f"{len(counts)} services checked, {time.monotonic() - started:.1f} s, seed {seed}")
    if not args.keep:
        for name in os.listdir(workdir):
            os.remove(os.path.join(workdir, name))
        os.rmdir(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
