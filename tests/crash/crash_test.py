#!/usr/bin/env python3
r"""Crash safety: kill -9 vigil at random moments, restart it, and check the database.

Starts the real vigil binary on a fresh database with a few hundred services probing local
targets that flip between up and down, SIGKILLs it at random moments (seeded; the seed is
printed, pass --seed to replay), restarts it each time, and after every kill reads the database
straight from its backend (--backend): a SQLite file (read-only, so vigil itself does the WAL
recovery on its next start), or a schema of its own on the ctest run's PostgreSQL server (read
with psql in one read-only snapshot, once the killed vigil's sessions are gone). The invariants
are one list, the same on both backends:

  - the storage is whole: on SQLite PRAGMA integrity_check is ok and no foreign key is
    dangling; on PostgreSQL every B-tree index of the schema agrees with its table (amcheck's
    bt_index_check with heapallindexed; the server enforces the foreign keys itself);
  - every tick's service exists (on PostgreSQL ticks have no foreign key);
  - every service that has ticks has exactly one open event, a service without ticks none;
  - a service's events are contiguous: ordered by start, each date_ended equals the next
    date_started, kinds alternate, no event ends before it starts;
  - every event starts at one of the service's ticks, and the open event's kind is the state of
    its newest tick (no event without the tick that caused it, and no tick without its event);
  - service_metrics counts equal the stored ticks (tick_count, up_count, down_count) and
    last_tick_at is the newest tick's ts: ticks and metrics were committed together;
  - the hour, day and minute rollups count exactly the stored ticks;
  - every stored tick is whole (up is 0/1, a down tick has its error, an up tick its status);
  - no committed tick is ever lost: each service's tick count never shrinks from one kill to
    the next;
  - every acknowledged push is stored: a few heartbeat services are pushed to all along, each
    push with a msg of its own, and every push answered 200 is, after the kill, one of its
    heartbeat's ticks with that msg or still queued for it in pending_beats (a 200 means
    committed; on PostgreSQL vigil is a cluster member, and a push that comes before its runner
    watches the heartbeat waits in the queue); after the last, clean run every one is a tick.

A last run ends with SIGTERM and must exit 0; the checks run once more. The whole run is bounded
(--kills, --max-run-seconds) to about a minute. Exit code 0 when every check holds, 1 otherwise,
77 when the backend cannot run here (PostgreSQL: no server, or no psql). Only loopback is used.
Needs python3 (standard library only), and psql for PostgreSQL.

PostgreSQL: the server is the one named in the file VIGIL_TEST_POSTGRES_INFO points to, written
by the postgres_fixture test tool (ctest's postgres fixture). To replay a seed by hand:

  build/tests/postgres_fixture start /tmp/pg.info
  VIGIL_TEST_POSTGRES_INFO=/tmp/pg.info python3 tests/crash/crash_test.py --vigil build/vigil \
      --backend postgres --seed 1234
  build/tests/postgres_fixture stop /tmp/pg.info
"""

import argparse
import http.client
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
    def __init__(self, binary, workdir, run_index, database, api_port):
        env = dict(os.environ)
        # Only the variable of the backend under test: vigil refuses DB_FILE and DATABASE_URL
        # set together.
        env.pop("DB_FILE", None)
        env.pop("DATABASE_URL", None)
        env.update(database.vigil_environment())
        env.update({
            "SERVICES_FILE": os.path.join(workdir, "services.json"),
            "API_HOST": "127.0.0.1",
            "API_PORT": str(api_port),  # the same port every run: the pusher's target
            "LOG_LEVEL": "warn",
            "RETENTION_DAYS": "0",  # keep every tick: metric counts must equal stored ticks
        })
        self.log_path = os.path.join(workdir, f"run-{run_index}.log")
        self.log = open(self.log_path, "wb")
        # Absolute: vigil runs in the work directory, and --vigil may be relative to ours.
        self.process = subprocess.Popen([os.path.abspath(binary), "run"], cwd=workdir, env=env,
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


# --- the pusher ----------------------------------------------------------------------------------

class Pusher:
    """Pushes to the heartbeats without pause from a few threads, one report in flight each, every
    push with a msg of its own (every seventh a failure report), and remembers each one answered
    200: a push vigil acknowledged must be stored whatever happens to vigil after. Pushes that
    fail (vigil killed or starting) are not remembered and are not retried."""

    THREADS = 4

    def __init__(self, api_port):
        self.api_port = api_port
        self.lock = threading.Lock()
        self.tokens = {}  # service_id -> push token, once the database has them
        self.acknowledged = {}  # msg -> service_id
        self.refused = 0  # answered, but not 200 (a 503: not committed in time)
        self.sent = 0
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(self.THREADS)]
        for thread in self.threads:
            thread.start()

    def set_tokens(self, tokens):
        with self.lock:
            self.tokens = dict(tokens)

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join()

    def acknowledged_pushes(self):
        with self.lock:
            return dict(self.acknowledged)

    def _run(self, index):
        number = 0
        while not self.stopping.is_set():
            with self.lock:
                tokens = sorted(self.tokens.items())
            if not tokens:
                time.sleep(0.05)
                continue
            service_id, token = tokens[(index + number) % len(tokens)]
            number += 1
            msg = f"push-{index}-{number}"
            path = f"/v1/push/{token}" + ("/fail" if number % 7 == 0 else "") + f"?msg={msg}"
            connection = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=10)
            try:
                connection.request("POST", path)
                status = connection.getresponse().status
            except OSError:
                time.sleep(0.01)  # vigil is down or starting
                continue
            finally:
                connection.close()
            with self.lock:
                self.sent += 1
                if status == 200:
                    self.acknowledged[msg] = service_id
                else:
                    self.refused += 1


class CheckFailed(Exception):
    pass


class Unavailable(Exception):
    """The backend cannot run on this machine: the test is skipped with the reason."""


# --- backends ------------------------------------------------------------------------------------
#
# Each backend gives vigil its database and reads it back: inspect(queries) waits until the
# database is what the kill left, then answers None when vigil had not created its tables yet,
# else (what the storage's own integrity check found, as a list of problems; {name: [row
# tuples]} for the {name: SQL} dict `queries`, every query run on one state of the database,
# with integers as int, text as str and NULL as None). TICK_UP is the tick's up column as 0/1.

class SqliteDatabase:
    name = "sqlite"
    TICK_UP = "up"

    def __init__(self, workdir):
        self.path = os.path.join(workdir, "vigil.db")

    def vigil_environment(self):
        return {"DB_FILE": self.path}

    def where(self):
        return f"database {self.path}"

    def inspect(self, queries):
        if not os.path.exists(self.path):
            return None  # killed before the database was created
        first = self._read({"tables": "SELECT name FROM sqlite_master WHERE type='table'",
                            "integrity": "PRAGMA integrity_check",
                            "dangling": "PRAGMA foreign_key_check"})
        problems = []
        if first["integrity"] != [("ok",)]:
            problems.append(f"integrity_check: {first['integrity'][:5]}")
        if first["dangling"]:
            problems.append(f"foreign_key_check: {first['dangling'][:5]}")
        if "service_ticks" not in {r[0] for r in first["tables"]}:
            if problems:
                raise CheckFailed("\n  ".join(problems))
            return None  # killed before the first migration committed
        return problems, self._read(queries)

    def _read(self, queries):
        # Read-only: the checker must not checkpoint or repair anything vigil left behind. One
        # transaction, so every query sees the same state.
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
        try:
            db.execute("BEGIN")
            return {name: db.execute(sql).fetchall() for name, sql in queries.items()}
        finally:
            db.close()

    def drop(self):
        pass  # the work directory goes with it


# The database of the shared server that tests make their schemas in: kPostgresTestDatabase in
# tests/support/store_backends.h.
POSTGRES_TEST_DATABASE = "vigil_tests"


class PostgresDatabase:
    """A schema of its own in the ctest run's PostgreSQL server, read with psql."""

    name = "postgres"
    TICK_UP = "CAST(up AS integer)"  # a boolean column
    SESSIONS_TIMEOUT = 30.0
    # The server's version, where PostgresServer finds its binaries. Not /usr/bin/psql, Debian's
    # Perl wrapper that picks a version: it doubles the start of each read.
    PSQL = "/usr/lib/postgresql/15/bin/psql"
    _NULL = "\x1d"  # psql's text for NULL: a character no stored text here contains
    _END = b"@@end-of-result@@\n"  # after each result of a read: no row starts with it

    def __init__(self):
        info_path = os.environ.get("VIGIL_TEST_POSTGRES_INFO")
        if not info_path:
            raise Unavailable("VIGIL_TEST_POSTGRES_INFO is not set (ctest sets it; see the "
                              "docstring to run this by hand)")
        try:
            with open(info_path) as f:
                key, _, rest = f.readline().strip().partition(" ")
        except OSError as e:
            raise Unavailable(f"cannot read {info_path} (written by the postgres_fixture "
                              f"setup test): {e.strerror}")
        if key != "conninfo":
            raise Unavailable(f"no PostgreSQL server: {rest}")
        if not os.access(self.PSQL, os.X_OK):
            raise Unavailable(f"no {self.PSQL} (postgresql-client-15)")
        # "host=... port=... user=... password=...", written by postgres_fixture: no quoting.
        server = dict(item.split("=", 1) for item in rest.split())
        self.password = server.pop("password", "")
        self.server = server
        self.schema = f"crash_{os.getpid()}"
        # psql's password comes from its environment, not its command line.
        self.psql_environment = dict(os.environ, PGPASSWORD=self.password)
        self.database_conninfo = " ".join(f"{k}={v}" for k, v in server.items())
        self.database_conninfo += f" dbname={POSTGRES_TEST_DATABASE}"
        self.schema_conninfo = f"{self.database_conninfo} options='-c search_path={self.schema}'"
        self._psql(f"CREATE SCHEMA {self.schema};\n"
                   # amcheck, for inspect(): once per database, so in public.
                   "CREATE EXTENSION IF NOT EXISTS amcheck SCHEMA public;\n",
                   conninfo=self.database_conninfo)

    def vigil_environment(self):
        # As TestDatabase::vigil_environment names a test's schema; application_name is how
        # inspect() finds vigil's sessions. With its password: for tests only, never printed.
        return {"DATABASE_URL": f"{self.schema_conninfo} password={self.password} "
                                f"application_name={self.schema}"}

    def where(self):
        return (f"schema {self.schema} of database {POSTGRES_TEST_DATABASE} on "
                f"{self.server.get('host')}:{self.server.get('port')}")

    def inspect(self, queries):
        """One psql run: waits for the killed vigil's sessions to be gone (a session's backend may
        still be running a statement, even committing it, after its client died: until then the
        database is not what the kill left); runs amcheck; then, when vigil's tables exist, the
        queries in one read-only snapshot."""
        end = self._END.decode().rstrip()
        script = [
            # pg_stat_activity is read once a transaction unless pg_stat_clear_snapshot().
            "DO $$ DECLARE deadline timestamptz := clock_timestamp() + interval "
            f"'{self.SESSIONS_TIMEOUT} seconds'; BEGIN "
            "WHILE EXISTS (SELECT 1 FROM pg_stat_activity "
            f"WHERE application_name = '{self.schema}') LOOP "
            "IF clock_timestamp() > deadline THEN RAISE EXCEPTION 'sessions of the killed "
            f"vigil still open after {self.SESSIONS_TIMEOUT:.0f} s'; END IF; "
            "PERFORM pg_sleep(0.01); PERFORM pg_stat_clear_snapshot(); END LOOP; END $$;",
            # bt_index_check raises an error at the first index that disagrees with its table.
            # Not in the snapshot below: with heapallindexed, amcheck refuses a transaction
            # snapshot for an index built since some rows it must find were written.
            "SELECT COUNT(public.bt_index_check(c.oid, true)) FROM pg_class c "
            "JOIN pg_am a ON a.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'i' AND a.amname = 'btree';",
            f"\\qecho {end}",
            "SELECT to_regclass('service_ticks') IS NOT NULL AS migrated \\gset",
            "\\if :migrated",
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;",
        ]
        for sql in queries.values():
            script += [f"{sql};", f"\\qecho {end}"]
        script += ["COMMIT;", "\\endif"]
        out = self._psql("\n".join(script) + "\n", self._ROWS)
        indexes, pos = self._result(out, 0)
        if pos == len(out):
            return None  # killed before the first migration committed
        results = {}
        for name in queries:
            results[name], pos = self._result(out, pos)
        # A failed amcheck failed the run (CheckFailed with its error); the count says it ran.
        return ([] if indexes and indexes[0][0] > 0 else ["amcheck checked no index"]), results

    # psql's output: unaligned, tuples only, each row's fields separated by \x1f and the row
    # ended by a zero byte; _END after each result.
    _ROWS = ["-At", "-F", "\x1f", "-0", "-P", f"null={_NULL}"]

    def _result(self, out, pos):
        """The rows of the result at `pos` of psql's output, and the position after it."""
        rows = []
        while not out.startswith(self._END, pos):
            end = out.index(b"\0", pos)
            rows.append(tuple(self._value(v) for v in out[pos:end].decode().split("\x1f")))
            pos = end + 1
        return rows, pos + len(self._END)

    def _value(self, text):
        if text == self._NULL:
            return None
        try:
            return int(text)  # integers, and sums of them (numeric without a fraction)
        except ValueError:
            return text

    def _psql(self, script, options=(), conninfo=None):
        """Runs `script` on the schema (or `conninfo`); its output, or CheckFailed with psql's
        error."""
        try:
            done = subprocess.run(
                [self.PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", *options,
                 "-d", conninfo or self.schema_conninfo, "-f", "-"],
                input=script.encode(), capture_output=True, env=self.psql_environment,
                timeout=60)
        except subprocess.TimeoutExpired:
            raise CheckFailed("psql did not answer within 60 s")
        if done.returncode != 0:
            raise CheckFailed(f"psql exited {done.returncode}: "
                              f"{done.stderr.decode(errors='replace').strip()}")
        return done.stdout

    def drop(self):
        self._psql(f"DROP SCHEMA {self.schema} CASCADE;\n", conninfo=self.database_conninfo)


def open_database(backend, workdir):
    return SqliteDatabase(workdir) if backend == "sqlite" else PostgresDatabase()


# --- invariants ----------------------------------------------------------------------------------

def check_database(db, previous_counts, acknowledged, final=False):
    """Checks every invariant, `acknowledged` being the pushes answered 200 ({msg: service_id});
    with `final` (after the clean stop) each of them must be a tick, otherwise a tick or a
    queued beat. Returns {service_id: tick count}, a summary dict and {service_id: push token}
    of the heartbeats."""
    up = db.TICK_UP
    inspected = db.inspect({
        # A tick row is whole: nothing of a tick can be half there. (Every service here has the
        # default thresholds, so an event opens at each change of a tick's up/down; an HTTP
        # service's up tick has its status code.)
        "broken": f"SELECT service_id, ts, {up}, status_code, error FROM service_ticks "
                  f"WHERE {up} NOT IN (0, 1) OR response_us < 0 "
                  "   OR region_id NOT IN (SELECT id FROM regions) "
                  f"   OR ({up} = 0 AND (error IS NULL OR error = '')) "
                  f"   OR ({up} = 1 AND status_code IS NULL AND service_id IN "
                  "       (SELECT id FROM services WHERE kind = 'http')) LIMIT 5",
        "heartbeats": "SELECT id, push_token FROM services WHERE kind = 'heartbeat'",
        # A pushed report is stored as a tick of its heartbeat carrying the push's msg.
        "pushed": "SELECT service_id, message FROM service_ticks WHERE message LIKE 'push-%'",
        # ... or waits, committed, in the queue for the runner that watches its heartbeat.
        "queued": "SELECT service_id, message FROM pending_beats WHERE message LIKE 'push-%'",
        "orphans": "SELECT DISTINCT service_id FROM service_ticks "
                   "WHERE service_id NOT IN (SELECT id FROM services) LIMIT 5",
        "ticks": f"SELECT service_id, COUNT(*), SUM({up}), MAX(ts) FROM service_ticks "
                 "GROUP BY service_id",
        "metrics": "SELECT service_id, tick_count, up_count, down_count, last_tick_at "
                   "FROM service_metrics",
        "service_rollups_hour": "SELECT service_id, SUM(count), SUM(up) FROM "
                                "service_rollups_hour GROUP BY service_id",
        "service_rollups_day": "SELECT service_id, SUM(count), SUM(up) FROM "
                               "service_rollups_day GROUP BY service_id",
        "lone": "SELECT t.service_id, COUNT(*) FROM service_ticks t WHERE NOT EXISTS (SELECT 1 "
                "FROM service_rollups_minute m WHERE m.service_id = t.service_id "
                "AND m.bucket = t.ts - t.ts % 60000) GROUP BY t.service_id",
        "minute_rows": "SELECT service_id, SUM(count) FROM service_rollups_minute "
                       "GROUP BY service_id",
        "events": "SELECT service_id, event, date_started, date_ended FROM service_events "
                  "ORDER BY service_id, date_started, id",
        "services": "SELECT id FROM services",
        "tick_times": f"SELECT service_id, ts, {up} FROM service_ticks "
                      "ORDER BY service_id, ts, seq",
    })
    if inspected is None:
        # Killed before vigil created its tables.
        return {}, {"ticks": 0, "events": 0, "most_events": 0, "pushes": 0}, {}
    problems, rows = inspected

    def fail(message):
        problems.append(message)

    if rows["broken"]:
        fail(f"incomplete ticks: {rows['broken']}")
    if rows["orphans"]:
        fail(f"ticks of services that do not exist: {rows['orphans']}")

    ticks = {}  # service_id -> (count, up, down, last ts)
    for sid, count, ups, last in rows["ticks"]:
        ticks[sid] = (count, ups, count - ups, last)
    metrics = {}
    for sid, count, ups, downs, last in rows["metrics"]:
        metrics[sid] = (count, ups, downs, last)
    for sid in set(ticks) | set(metrics):
        if ticks.get(sid) != metrics.get(sid):
            fail(f"service {sid}: ticks (count, up, down, last ts) {ticks.get(sid)} but "
                 f"metrics {metrics.get(sid)}")

    # The rollups are written in the same transactions as the ticks they summarise: every
    # resolution counts exactly the stored ticks (no retention runs in this test). A minute with
    # one tick has no minute row: that tick stands for it.
    for table in ("service_rollups_hour", "service_rollups_day"):
        for sid, count, ups in rows[table]:
            if (count, ups, count - ups) != ticks.get(sid, (0, 0, 0))[:3]:
                fail(f"service {sid}: {table} counts {count} ticks ({ups} up) but the ticks "
                     f"table has {ticks.get(sid)}")
    lone = dict(rows["lone"])
    in_rows = dict(rows["minute_rows"])
    for sid, (count, _, _, _) in ticks.items():
        if lone.get(sid, 0) + in_rows.get(sid, 0) != count:
            fail(f"service {sid}: minute rows count {in_rows.get(sid, 0)} and lone ticks "
                 f"{lone.get(sid, 0)}, but it has {count} ticks")

    stored_pushes = {msg: sid for sid, msg in rows["pushed"]}
    if not final:
        stored_pushes.update({msg: sid for sid, msg in rows["queued"] if msg not in stored_pushes})
    lost = sorted((msg, sid) for msg, sid in acknowledged.items() if stored_pushes.get(msg) != sid)
    if lost:
        fail(f"{len(lost)} of {len(acknowledged)} pushes answered 200 are not stored (final: as a tick; else also queued) of "
             f"their heartbeat: {lost[:5]}")

    for sid, before in previous_counts.items():
        now = ticks.get(sid, (0,))[0]
        if now < before:
            fail(f"service {sid}: {before} ticks after an earlier kill, only {now} now")

    events = {}
    for sid, kind, start, end in rows["events"]:
        events.setdefault(sid, []).append((kind, start, end))
    services = [r[0] for r in rows["services"]]
    tick_times = {}
    for sid, ts, tick_up in rows["tick_times"]:
        tick_times.setdefault(sid, {})[ts] = tick_up  # the last tick at a given ms wins, as latest
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
        "pushes": len(acknowledged),
    }
    return counts, summary, dict(rows["heartbeats"])


# The exit code of a run skipped because its backend cannot run here (ctest's SKIP_RETURN_CODE).
SKIPPED = 77


# --- the test ------------------------------------------------------------------------------------

def services_file(flip_port, refused_port, count, heartbeats, rng):
    # Pushed to all along: they never miss their deadline within a run.
    services = [{"name": f"beat-{i}", "kind": "heartbeat", "interval_seconds": 3600}
                for i in range(heartbeats)]
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
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite",
                        help="the database vigil runs on (default: sqlite)")
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: random)")
    parser.add_argument("--services", type=int, default=300)
    parser.add_argument("--heartbeats", type=int, default=4)
    parser.add_argument("--kills", type=int, default=15)
    parser.add_argument("--max-run-seconds", type=float, default=4.0,
                        help="longest a run lives before its kill (each is uniform in 0.05..this)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (and the PostgreSQL schema)")
    args = parser.parse_args()

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    rng = random.Random(seed)
    workdir = tempfile.mkdtemp(prefix="vigil-crash-")
    try:
        db = open_database(args.backend, workdir)
    except (Unavailable, CheckFailed) as e:
        os.rmdir(workdir)
        if isinstance(e, Unavailable):
            print(f"crash test ({args.backend}): skipped: {e}")
            return SKIPPED
        print(f"crash test ({args.backend}): cannot set up the database: {e}", file=sys.stderr)
        return 1
    print(f"crash test ({db.name}): seed {seed} (replay with --seed {seed}), {args.services} "
          f"services, {args.kills} kills, {db.where()}", flush=True)

    server = FlipServer(("127.0.0.1", 0), FlipHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with open(os.path.join(workdir, "services.json"), "w") as f:
        json.dump(services_file(server.server_address[1], closed_port(), args.services,
                                args.heartbeats, rng), f)
    api_port = closed_port()
    pusher = Pusher(api_port)

    started = time.monotonic()
    counts = {}
    summary = {"ticks": 0, "events": 0, "most_events": 0, "pushes": 0}
    kills_with_ticks = 0
    try:
        for run in range(args.kills):
            vigil = Vigil(args.vigil, workdir, run, db, api_port)
            time.sleep(rng.uniform(0.05, args.max_run_seconds))
            vigil.kill()
            ticks_before = summary["ticks"]
            # Taken after the kill: every push answered by then is in it.
            counts, summary, tokens = check_database(db, counts, pusher.acknowledged_pushes())
            pusher.set_tokens(tokens)
            if summary["ticks"] > ticks_before:
                kills_with_ticks += 1
            print(f"  kill {run + 1}: {summary['ticks']} ticks, {summary['events']} events, "
                  f"{summary['pushes']} acknowledged pushes stored "
                  f"({time.monotonic() - started:.1f} s)", flush=True)

        vigil = Vigil(args.vigil, workdir, args.kills, db, api_port)
        time.sleep(2.0)
        pusher.stop()  # every push answered before SIGTERM: a clean stop loses none either
        vigil.stop(timeout=20)
        counts, summary, _ = check_database(db, counts, pusher.acknowledged_pushes(), final=True)

        # The checks above only mean something if the runs wrote ticks and events flipped.
        if kills_with_ticks < args.kills // 2:
            raise CheckFailed(f"only {kills_with_ticks} of {args.kills} runs wrote ticks before "
                              "their kill: the test covered too little")
        if summary["most_events"] < 3:
            raise CheckFailed("no service changed state twice: the targets did not flip")
        if args.heartbeats > 0 and summary["pushes"] < args.kills:
            raise CheckFailed(f"only {summary['pushes']} pushes were answered 200: the pusher "
                              "covered too little")
    except CheckFailed as e:
        print(f"FAILED (seed {seed}, work directory {workdir} and {db.where()} kept):\n  {e}",
              file=sys.stderr)
        return 1
    finally:
        pusher.stop()
        server.shutdown()

    print(f"crash test ({db.name}): ok: {args.kills} kills ({kills_with_ticks} after ticks were "
          f"written) and a clean stop, {summary['ticks']} ticks and {summary['events']} events "
          f"over {len(counts)} services checked, {summary['pushes']} acknowledged pushes "
          f"stored ({pusher.refused} answered 503, of {pusher.sent}), "
          f"{time.monotonic() - started:.1f} s, seed {seed}")
    if not args.keep:
        db.drop()
        for name in os.listdir(workdir):
            os.remove(os.path.join(workdir, name))
        os.rmdir(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
