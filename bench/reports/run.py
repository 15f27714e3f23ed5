"""Report benchmark: the pilot evaluation's figures over a generated year of a busy county, on SQLite.

Generates (once, into a throwaway data directory, or ``--db`` to keep it) a year of a
county that holds 100,000 consultations: about 226,000 switchboard calls with their
call events, the callbacks, and the audit events the rooms leave (seats of counsellors,
citizens and experts coming and going, call events); then times the report of a month,
a week and a day (``ops/reports.report_of``, what the page and the API run in the store's
reader thread), ``--repeat`` times each, and prints the median wall and CPU time.

    ./run bench reports --repeat 5                    # with the indexes of migration 0008
    ./run bench reports --repeat 5 --without-indexes  # the same without them, for comparison

Writes the figures to bench/results/reports-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from roomserver import config  # noqa: E402
from roomserver.ops import periods, reports  # noqa: E402
from roomserver.store import open_store  # noqa: E402

TZ = ZoneInfo("Europe/Berlin")
YEAR = 2026
OFFICES = ["auslaenderbehoerde", "jobcenter", "sozialamt", "jugend-bildung"]
LANGUAGES = ["dgs", "ar", "uk", "tr", "fa", "ru"]
TEAMS = [f"team{n}" for n in range(12)]
INDEXES = {"expert_calls_by_time": "expert_calls (requested_at)",
           "callback_requests_by_time": "callback_requests (created_at)",
           "audit_events_by_action": "audit_events (action, at)",
           "consultation_figures_by_start": "consultation_figures (started_at)"}


def generate(path: Path, consultations: int, seed: int) -> dict[str, int]:
    """A year of a busy county, written straight into the store's tables (after its migrations ran)."""
    open_store("", path).close()  # the schema, as the server would make it
    rnd = random.Random(seed)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    start = int(datetime(YEAR, 1, 1, tzinfo=TZ).timestamp())
    db.executemany("INSERT INTO departments (id, name, kind, created_at) VALUES (?, ?, ?, ?)",
                   [(d, d.title(), "county", start) for d in OFFICES] +
                   [(t, f"Team {t[4:]}", "agency", start) for t in TEAMS])
    db.executemany("INSERT INTO accounts (id, username, display_name, role, department_id, created_at)"
                   " VALUES (?, ?, ?, ?, ?, ?)",
                   [(f"c{n}", f"c{n}", f"C {n}", "counsellor", TEAMS[n % len(TEAMS)], start) for n in range(120)] +
                   [(f"e{n}", f"e{n}", f"E {n}", "expert", OFFICES[n % 4], start) for n in range(80)])
    workdays = [d for d in (datetime(YEAR, 1, 1, tzinfo=TZ) + timedelta(days=i) for i in range(365))
                if d.weekday() < 5]
    counts = dict.fromkeys(("consultations", "calls", "call_events", "callbacks", "audit_events"), 0)
    rooms, figures, calls, events, callbacks, audit = [], [], [], [], [], []

    def flush() -> None:
        db.executemany("INSERT INTO rooms (id, title, waiting_room, max_participants, state, created_by, created_at,"
                       " ended_at) VALUES (?, 'Beratung', 0, 6, 'ended', ?, ?, ?)", rooms)
        db.executemany("INSERT INTO consultation_figures (room_id, started_at, ended_at, team, reports, poor_reports,"
                       " seats, relay_seats) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", figures)
        db.executemany("INSERT INTO expert_calls (id, room_id, requested_by, kind, target, state, requested_at,"
                       " accepted_at, accepted_by, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", calls)
        db.executemany("INSERT INTO call_events (call_id, event, at, account_id) VALUES (?, ?, ?, ?)", events)
        db.executemany("INSERT INTO callback_requests (id, room_id, call_id, kind, target, requested_by, created_at,"
                       " done_at, done_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", callbacks)
        db.executemany("INSERT INTO audit_events (at, actor, actor_role, action, room_id, subject, detail)"
                       " VALUES (?, ?, ?, ?, ?, ?, NULL)", audit)
        for name, rows in (("consultations", rooms), ("calls", calls), ("call_events", events),
                           ("callbacks", callbacks), ("audit_events", audit)):
            counts[name] += len(rows)
            rows.clear()
        figures.clear()

    for n in range(consultations):
        day = workdays[n * len(workdays) // consultations]
        begin = int(day.timestamp()) + rnd.randint(7 * 3600 + 1800, 16 * 3600)
        end = begin + rnd.randint(900, 3600)
        room, counsellor = f"r{n}", f"c{rnd.randrange(120)}"
        rooms.append((room, counsellor, begin - 600, end))
        reports_n = rnd.randint(10, 60)
        figures.append((room, begin, end, TEAMS[int(counsellor[1:]) % len(TEAMS)], reports_n,
                        rnd.randint(0, reports_n // 3), 2, int(rnd.random() < 0.15)))
        for who, role in ((counsellor, "counsellor"), (f"citizen-{n}", "citizen")):
            audit += [(begin, who, role, "seat.join", room, who), (end, who, role, "seat.leave", room, who)]
        at = begin + 120
        for c in range(rnd.choice((1, 2, 2, 3, 3, 3))):
            at += rnd.randint(60, 600)
            call_id = f"k{n}_{c}"
            language = rnd.random() < 0.15
            kind, target = ("language", rnd.choice(LANGUAGES)) if language else ("department", rnd.choice(OFFICES))
            state = rnd.choices(("accepted", "timed_out", "cancelled", "no_one"), (70, 15, 5, 10))[0]
            events.append((call_id, "requested", at, counsellor))
            audit.append((at, counsellor, None, "call.requested", room, call_id))
            accepted_at = accepted_by = None
            if state != "no_one":
                for r in range(rnd.randint(1, 4)):
                    events.append((call_id, "rung", at, f"e{rnd.randrange(80)}"))
                    audit.append((at, f"e{r}", None, "call.rung", room, call_id))
                if rnd.random() < 0.2:
                    events.append((call_id, "declined", at + 5, f"e{rnd.randrange(80)}"))
            ended = at + 60
            if state == "accepted":
                accepted_at, accepted_by = at + rnd.randint(3, 55), f"e{rnd.randrange(80)}"
                ended = accepted_at
                joined = accepted_at + rnd.randint(2, 12)
                audit += [(joined, accepted_by, "expert", "seat.join", room, accepted_by),
                          (min(end, joined + rnd.randint(120, 1200)), accepted_by, "expert", "seat.leave", room,
                           accepted_by)]
            elif state == "cancelled":
                ended = at + rnd.randint(5, 40)
            events.append((call_id, state, ended, accepted_by))
            audit.append((ended, accepted_by or "system", None, f"call.{state}", room, call_id))
            calls.append((call_id, room, counsellor, kind, target, state, at, accepted_at, accepted_by, ended))
            if state in ("timed_out", "no_one") and rnd.random() < 0.8:
                done = at + rnd.randint(600, 86400) if rnd.random() < 0.9 else None
                callbacks.append((f"cb{n}_{c}", room, call_id, kind, target, counsellor, at + 30, done,
                                  f"e{rnd.randrange(80)}" if done else None))
        if len(audit) > 200_000:
            flush()
    flush()
    db.commit()
    db.execute("ANALYZE")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # as a server that ran for a year would have it
    db.close()
    return counts


def time_reports(path: Path, repeat: int) -> dict[str, dict[str, float]]:
    settings = config.load(ROOT / "config" / "roomserver.toml",
                           env={"ROOMSERVER_SERVER_DATA_DIR": str(path.parent),
                                "ROOMSERVER_PRIVACY_RECORDS_RETENTION_DAYS": "3650",
                                "ROOMSERVER_AUDIT_RETENTION_DAYS": "3650"})
    store = open_store("", path)
    now = int(datetime(YEAR + 1, 1, 10, tzinfo=TZ).timestamp())
    out = {}
    try:
        for kind, value in (("month", f"{YEAR}-10"), ("week", f"{YEAR}-W42"), ("day", f"{YEAR}-10-14")):
            period = periods.parse(kind, value, TZ)
            walls, cpus = [], []
            for _ in range(repeat):
                wall, cpu = time.perf_counter(), time.process_time()
                report = store.blocking.read(lambda tx, p=period: reports.report_of(tx, p, settings, now))
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
            county = report["rows"][0]["figures"]
            out[kind] = {"wall_median_s": round(statistics.median(walls), 3), "wall_min_s": round(min(walls), 3),
                         "cpu_median_s": round(statistics.median(cpus), 3),
                         "calls": county["calls_placed"], "consultations": county["consultations"]}
    finally:
        store.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--consultations", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--db", type=Path, help="keep the generated store here (reused when it exists)")
    parser.add_argument("--without-indexes", action="store_true", help="drop the report indexes of 0008 first")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="roomserver-bench-reports-")
    path = args.db or Path(tmp.name) / "roomserver.sqlite3"
    t0 = time.perf_counter()
    counts = None
    if not path.exists():
        counts = generate(path, args.consultations, args.seed)
        print(f"generated in {time.perf_counter() - t0:.0f} s: {counts}")
    db = sqlite3.connect(path)
    if args.without_indexes:
        for name in INDEXES:
            db.execute(f"DROP INDEX IF EXISTS {name}")
    else:
        for name, on in INDEXES.items():
            db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {on}")
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    sizes = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
             for t in ("consultation_figures", "expert_calls", "call_events", "callback_requests", "audit_events")}
    db.close()
    figures = time_reports(path, args.repeat)
    print(f"store: {sizes}")
    print(f"indexes: {'none of 0008' if args.without_indexes else ', '.join(INDEXES)}")
    print(f"load average during the run: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print("| report | median wall | fastest wall | median CPU | calls | consultations |")
    print("| --- | --- | --- | --- | --- | --- |")
    for kind, f in figures.items():
        print(f"| {kind} | {f['wall_median_s']} s | {f['wall_min_s']} s | {f['cpu_median_s']} s | {f['calls']} |"
              f" {f['consultations']} |")
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    out = results / f"reports-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"machine": platform.platform(), "python": platform.python_version(),
                               "without_indexes": args.without_indexes, "store": sizes, "figures": figures},
                              indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
