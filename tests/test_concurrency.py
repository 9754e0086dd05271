"""Runs and landings at once, on a machine whose cores are busy, never deadlock and count every
file and every outcome once (issue 18, "Runs that never deadlock").

Each round starts from an empty warehouse, as a fresh clone does, so the processes also race to
create the schema. Released at the same moment, as separate processes:
- three runs (the daily job's steps, pipeline.run_day, each process first setting the services
  up as `tally run` does): two of date D, one of date E;
- two landings: `tally upload` of a second copy of one of E's statements (the same bytes the run
  of E lands from the inbox) and, for D, a landing of the inbox followed by a load
  (pipeline.land_day, load_day), which waits for the run lock;
while a sixth process re-applies the control tables' schema every second, as a new release
would (ALTER TABLE on the manifest and the run log while the runs read them: the shape of the
deadlock once seen), and a burner process per core keeps both cores busy. What may happen is
what pipeline.py says: a run waits for the run lock up to its limit, then says that another run
holds the warehouse (RunInProgress); a landing never waits; a load outside a run waits for the
run.

Rounds alternate two kinds: in "turns" both runs of D wait as long as it takes (they must take
turns and both publish) and the run of E does not wait; in "contention" only the first run of D
waits, so the other two reconcile only if they come first, and are otherwise turned away. A run
costs tens of seconds whatever its size, so a round costs one to three runs:
TALLY_CONCURRENCY_ROUNDS=N runs N rounds (default 2, one of each kind).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import pytest

from tally import pipeline, runlock, sources
from tally.devtools import generator
from tally.services import postgres
from tests.conftest import reset

D = date(2026, 11, 20)
E = date(2026, 11, 24)  # not the day after D: the two dates may be reconciled in either order
SCALE = 50  # the generator's smallest day: a round's time is the runs' fixed cost
ROUNDS = int(os.environ.get("TALLY_CONCURRENCY_ROUNDS", "2"))
PROCESS_TIMEOUT = 900

KINDS = ("turns", "contention")
# Seconds each run waits for the run lock. One run always waits, so that a load holding the
# lock at that moment cannot turn every run away.
WAITS = {"turns": {"run D #1": 600, "run D #2": 600, "run E": 0},
         "contention": {"run D #1": 600, "run D #2": 0, "run E": 0}}
RUN = """
import json, sys
from datetime import date
from tally import config, pipeline, runlock, services
settings = services.up(config.load())
try:
    result = pipeline.run_day(settings, date.fromisoformat(sys.argv[1]),
                              wait_seconds=float(sys.argv[2]))
except runlock.RunInProgress as exc:  # the documented answer when the wait runs out
    result = {"run_in_progress": str(exc)}
print(json.dumps(result))
"""
LAND_AND_LOAD = """
import json, sys
from datetime import date
from tally import config, pipeline, runlock, services
settings = services.up(config.load())
day = date.fromisoformat(sys.argv[1])
landed = pipeline.land_day(settings, day, pulls=False)
try:
    loaded = pipeline.load_day(settings, day, wait_seconds=600)
except runlock.RunInProgress as exc:
    loaded = {"run_in_progress": str(exc)}
print(json.dumps({"landed": landed["landed"], "duplicates": landed["duplicates"],
                  "loaded": loaded}))
"""
# A release whose control tables changed: their part of the schema is applied again, for real,
# once a second until the stop file appears; prints how many times it was applied.
RELEASE = """
import os, sys, time
from tally import config, warehouse
from tally.services import postgres
applied = 0
with postgres.connect(config.load(), autocommit=True) as conn:
    while not os.path.exists(sys.argv[1]):
        if conn.execute("select to_regclass('tally.schema_state')").fetchone()[0]:
            conn.execute("delete from tally.schema_state where part = 'control'")
            warehouse.ensure_schema(conn)
            applied += 1
        time.sleep(0.2)
print(applied)
"""


class LockWatch(threading.Thread):
    """Samples the run lock: when each holder took it (tally.run_lock.acquired_at)."""

    def __init__(self, settings):
        super().__init__(daemon=True)
        self.settings, self.taken, self.done = settings, {}, threading.Event()

    def run(self):
        with postgres.connect(self.settings, autocommit=True) as conn:
            while not self.done.is_set():
                try:
                    for run_id, acquired_at in conn.execute(
                            "select run_id, acquired_at from tally.run_lock").fetchall():
                        self.taken.setdefault(run_id, acquired_at)
                except Exception:  # no schema yet: the processes are creating it
                    pass
                time.sleep(0.05)


def start(args: list[str], go: Path, code: str | None = None) -> subprocess.Popen:
    """A process that waits for the go file, then runs `code` (Python) or the command `args`.
    Its output goes to files beside the go file (a full pipe would stall it)."""
    wait = f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
    if code is not None:
        argv = [sys.executable, "-c", wait + code, *args]
    else:
        argv = [sys.executable, "-c", wait + "import subprocess, sys\n"
                "sys.exit(subprocess.run(sys.argv[1:]).returncode)\n", *args]
    name = f"{go.parent}/process-{time.monotonic_ns()}"
    with open(f"{name}.out", "w") as out, open(f"{name}.err", "w") as err:
        proc = subprocess.Popen(argv, text=True, stdout=out, stderr=err)
    proc.output_files = (f"{name}.out", f"{name}.err")
    return proc


def finish(proc: subprocess.Popen, name: str) -> str:
    try:
        proc.wait(timeout=PROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    out, err = (Path(path).read_text(errors="replace") for path in proc.output_files)
    assert proc.returncode == 0, f"{name} failed (exit {proc.returncode}):\n{err[-4000:]}"
    return out


@pytest.fixture
def busy_cores():
    """Both cores kept busy by other processes for the length of the test."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
               for _ in range(os.cpu_count() or 2)]
    yield
    for burner in burners:
        burner.kill()
        burner.wait()


@pytest.mark.parametrize("round_no", range(1, ROUNDS + 1))
def test_runs_and_landings_at_once_under_load_take_turns_and_count_once(
        settings, busy_cores, tmp_path, round_no):
    kind = KINDS[(round_no - 1) % len(KINDS)]
    waits = WAITS[kind]
    reset(settings, prepare=False)  # as on a fresh clone: the processes create the schema
    generator.generate_day(D, SCALE, settings.inbox_dir, seed=40 + round_no)
    generator.generate_day(E, SCALE, settings.inbox_dir, seed=50 + round_no)
    # A second delivery of E's bank statement, as a person would upload it: the same bytes.
    (statement,) = sorted(settings.inbox_dir.glob(f"bank_csv/{E.isoformat()}/*"))
    resent = tmp_path / f"resent_{statement.name}"
    resent.write_bytes(statement.read_bytes())

    server_log = settings.home / "pg" / "server.log"
    log_from = server_log.stat().st_size if server_log.exists() else 0
    go = tmp_path / "go"
    tally = str(Path(sys.executable).parent / "tally")
    dates = {"run D #1": D, "run D #2": D, "run E": E}
    processes = {name: start([day.isoformat(), str(waits[name])], go, RUN)
                 for name, day in dates.items()}
    processes["upload E"] = start([tally, "upload", "--source", "bank_csv", "--date",
                                   E.isoformat(), str(resent)], go)
    processes["land and load D"] = start([D.isoformat()], go, LAND_AND_LOAD)
    stop = tmp_path / "stop"
    release = start([str(stop)], go, RELEASE)
    watch = LockWatch(settings)
    watch.start()
    time.sleep(1.5)  # every process has imported Tally: release them together
    go.touch()
    try:
        outputs = {name: finish(proc, name) for name, proc in processes.items()}
        stop.touch()
        releases = int(finish(release, "new release").split()[-1])
    finally:
        for proc in [*processes.values(), release]:
            if proc.poll() is None:
                proc.kill()
        watch.done.set()
        watch.join()
    assert releases > 0  # the schema changed while the runs ran

    # No process failed. A run that would not wait may have been turned away, and only so;
    # a run or a load that waits did not run out of time.
    results = {name: json.loads(outputs[name].splitlines()[-1]) for name in dates}
    turned_away = {name for name, r in results.items() if "run_in_progress" in r}
    assert all("has been reconciling" in results[name]["run_in_progress"]
               for name in turned_away), results
    assert not {name for name in turned_away if waits[name]}, results
    assert len(turned_away) < len(results), results  # somebody reconciled
    loaded = json.loads(outputs["land and load D"].splitlines()[-1])["loaded"]
    assert "run_in_progress" not in loaded, loaded
    assert outputs["upload E"].startswith(("landed:", "duplicate:")), outputs["upload E"]
    # No session deadlocked or collided on a catalog row: PostgreSQL logs both.
    logged = server_log.read_bytes()[log_from:].decode(errors="replace")
    assert "deadlock detected" not in logged
    assert "concurrently" not in logged  # tuple concurrently updated / deleted

    # What was landed and not loaded by a run (a date whose run was turned away) is loaded now.
    for day in (D, E):
        pipeline.load_day(settings, day, wait_seconds=0)
    with postgres.connect(settings, autocommit=True) as conn:
        assert runlock.holder(conn) is None
        runs = conn.execute(
            "select run_id, business_date, status, report_uri, finished_at from tally.runs"
            " where status = 'published' order by finished_at").fetchall()
        published = sorted(day for _, day, _, _, _ in runs)
        expected = sorted(dates[name] for name in dates if name not in turned_away)
        assert published == expected, (runs, results)
        # Every run turned away is recorded as failed, with the holder it met.
        assert conn.execute("select count(*) from tally.runs where status = 'failed'"
                            " and error like 'run % has been reconciling %'").fetchone()[0] \
            == len(turned_away)
        # The runs of a date published versions one after the other.
        for day in (D, E):
            versions = sorted(uri.rsplit("/", 2)[-2] for _, d, _, uri, _ in runs if d == day)
            assert versions == [f"v{n:04d}" for n in range(1, len(versions) + 1)]
        # Took turns: no run took the lock before the one holding it had finished.
        assert all(run_id in watch.taken for run_id, *_ in runs), (watch.taken, runs)
        held = sorted((watch.taken[run_id], finished) for run_id, _, _, _, finished in runs)
        for (_, first_finished), (second_taken, _) in zip(held, held[1:], strict=False):
            assert second_taken >= first_finished, held

        for day in set(published):
            # Each open row has one outcome per project on the date: counted once.
            outcomes, distinct = conn.execute(
                "select count(*), count(distinct (project, transaction_key))"
                " from marts.fct_outcomes where as_of_date = %s", (day,)).fetchone()
            assert outcomes == distinct > 0, (day, outcomes, distinct)
        # The scope (rebuilt by each run) is the last run's, and its outcomes are all there.
        last = runs[-1][1]
        assert conn.execute("select count(*) from intermediate.int_recon__scope"
                            " where as_of_date = %s", (last,)).fetchone() == conn.execute(
            "select count(*) from marts.fct_outcomes where as_of_date = %s", (last,)).fetchone()
        for day in (D, E):
            assert_every_file_loaded_once(settings, conn, day)
        # The uploaded copy and the inbox's are one content: one receipt loaded, the other (if
        # the run of E landed its inbox) a duplicate.
        assert conn.execute(
            "select array_agg(status order by status) from tally.files"
            " where business_date = %s and source = 'bank_csv'", (E,)).fetchone()[0] == \
            (["loaded"] if "run E" in turned_away else ["duplicate", "loaded"])


def assert_every_file_loaded_once(settings, conn, day: date) -> None:
    """Every receipt of the day ended loaded or a duplicate of a loaded one; each content is
    loaded once; a loaded file's rows are in its raw table once, a duplicate's not at all."""
    configs = sources.load_all(settings)
    rows = conn.execute(
        "select file_id, source, sha256, status, duplicate_of, row_count from tally.files"
        " where business_date = %s", (day,)).fetchall()
    loaded = {digest: file_id for file_id, _, digest, status, _, _ in rows if status == "loaded"}
    assert len(loaded) == sum(status == "loaded" for *_, status, _, _ in rows)
    for file_id, source, digest, status, duplicate_of, row_count in rows:
        assert status in ("loaded", "duplicate"), (file_id, status)
        if status == "duplicate":
            assert duplicate_of == loaded[digest], (file_id, duplicate_of)
        in_table = conn.execute(f"select count(*), count(distinct record_no) from"
                                f" {configs[source].table_name()} where file_id = %s",
                                (file_id,)).fetchone()
        expected = row_count if status == "loaded" else 0
        assert in_table == (expected, expected), (file_id, status, in_table)


def test_setting_the_cluster_up_from_several_commands_at_once_does_not_collide(settings):
    """Every `tally run` and `tally upload` sets the roles up (ALTER ROLE ... PASSWORD): before
    they took turns, about one in five of them failed when several started together."""
    if not settings.pg.embedded:
        pytest.skip("the roles are set up on the embedded cluster only")
    errors = []

    def set_up():
        for _ in range(5):
            try:
                postgres._setup_roles(settings)
            except Exception as exc:  # reported below
                errors.append(exc)

    threads = [threading.Thread(target=set_up) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[0]
