"""Benchmark: each stage of the daily pipeline on a generated day, on services of its own.

`tally bench --rows N [N ...]` (`make bench`: 100 000 and 1 000 000; `make bench-10m`: ten
million) starts a PostgreSQL cluster and an S3 server of its own (TALLY_HOME/bench; ports in
bench_settings, `--slot` to run beside another checkout's bench), wipes them, generates a
business day of N platform transactions with their channel and bank counterparts, and times,
one after the other:

- generate: write the day's files (not part of a daily run);
- parse: parse every file from disk, results thrown away (the parsers alone);
- land: the files to the S3 raw zone, recorded in the manifest (pipeline.land_day);
- load: fetch from S3, parse, self-check and COPY into raw.* (pipeline.load_day);
- dbt build: every model and test (transform.build); each model's time comes from dbt's
  run_results.json, and "matching" is the sum of the reconciliation models (MATCHING_MODELS);
- gate: the GX checkpoint, its verdict recorded on a bench run (pipeline.check_gate);
- publish: the day's reports to the published zone (pipeline.publish);
- end to end: land + load + dbt build + gate + publish, i.e. what a daily run costs once the
  files exist (without Airflow's scheduling, generation or the standalone parse).

Each stage runs in a fresh process of its own, as Airflow runs each task (its start and imports
are not timed), so memory one stage leaves behind is not counted in the next. For each: wall
seconds, rows per second (rows in all of the day's files / seconds), and the peak memory of the
processes the stage involves (PROCESSES): the stage's process and its children (dbt), the
PostgreSQL server (postmaster and backends) and the S3 server. A background thread samples them
every SAMPLE_SECONDS: PostgreSQL's processes by proportional set size (its shared buffers count
once, not once per backend), the others by RSS; the stage process's and dbt's own peaks are also
read exactly from getrusage, so a spike between two samples is not missed. A stage's peak is the
sum of its process groups' peaks (an upper bound: they need not peak at the same moment).

`tally bench --rows N --days K` (`make bench-days`: 100 000 a day for 30 days) reconciles K
consecutive generated business days on one warehouse, in date order, each as the daily run does
(run_days): yesterday's suspense and settlements carry into today, as the generator's payouts
pay the previous day's channel bills. Each day's files are generated just before the day and
deleted once landed. Every day is reconciled (land, load, dbt build, gate); to reach a long
history quickly, only day 2 and the last two days are published, the others end after the gate
as dry runs. Each day's stages are recorded as above (parse and the baselines are not run), and
the flat-cost check compares day K's end to end with day 2's (the first day with history).
Each day also records its reconciliation scope (scope_rows): the day's new rows and the open
items carried into it, so a cost that grows can be read against what the day had to hold.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, date, datetime, timedelta
from importlib import metadata
from pathlib import Path

import psutil

from tally import config
from tally.services import postgres, process

BENCH_DATE = date(2026, 11, 20)
SAMPLE_SECONDS = 0.2
MIB = 2**20
# The reconciliation models (dbt_project/models/intermediate and marts): the "matching" figure.
MATCHING_MODELS = ("int_recon__scope", "fct_matches", "int_recon__open_items", "fct_outcomes")
DAILY_STAGES = ("land", "load", "dbt build", "gate", "publish")
# The process groups each stage involves: "pipeline" is the stage's own Python process and its
# children (dbt); the bench process itself only orchestrates and is not counted.
PROCESSES = {
    "generate": ("pipeline",),
    "parse": ("pipeline",),
    "land": ("pipeline", "postgres", "s3"),
    "load": ("pipeline", "postgres", "s3"),
    "dbt build": ("pipeline", "postgres"),
    "matching": ("pipeline", "postgres"),
    "gate": ("pipeline", "postgres", "s3"),
    "publish": ("pipeline", "postgres", "s3"),
    "baselines": ("pipeline", "postgres", "s3"),
}
GROUPS = ("pipeline", "postgres", "s3")
# The targets on a two-core machine.
TARGET_PEAK_MIB = 2048
TARGET_END_TO_END_SECONDS_10M = 300
TARGET_MATCHING_SECONDS_10M = 60
# Consecutive days: day K's end to end at most this much above day 2's.
TARGET_FLAT_COST_RATIO = 1.15
# Bench slots with the default ports: 0-8 keep clear of the demo's and the test sessions'.
MAX_SLOT = 8
KEEP_MARKER = "<!-- Everything below this line is kept when `tally bench` rewrites the file. -->"


def bench_settings(base: config.Settings, slot: int = 0) -> config.Settings:
    """The bench's own services under TALLY_HOME/bench: PostgreSQL on the configured port + 1 +
    slot, S3 on the configured port + 10 + 10 x slot (S3 takes 7 ports from there, and the same
    + 10000). With the default ports, slots 0-8 stay clear of the demo's (54329, 18333) and of
    the test sessions' (54339 + 2n, 18433 + 20n, their benches at + 1 and + 10): two checkouts
    bench at once with different slots (`tally bench --slot N`)."""
    if not 0 <= slot <= MAX_SLOT:
        raise ValueError(f"the bench's slot is 0 to {MAX_SLOT}, not {slot}")
    env = {**base.env, "TALLY_HOME": str(base.home / "bench"),
           "TALLY_PG_PORT": str(base.pg.port + 1 + slot),
           "TALLY_S3_PORT": str(base.s3.port + 10 + 10 * slot)}
    for name in ("TALLY_PG_DSN", "TALLY_S3_ENDPOINT", "AIRFLOW_CONN_TALLY_WAREHOUSE",
                 "AIRFLOW_CONN_TALLY_S3", "TALLY_INBOX", "TALLY_INBOX_BUCKET"):
        env.pop(name, None)
    return config.load(env)


def _check_ports_free(settings: config.Settings) -> None:
    """With the bench's own services stopped, nothing may listen on their ports: another
    checkout's bench there would keep PostgreSQL from starting, or answer as our S3 server."""
    s3 = settings.s3.port
    ports = [settings.pg.port, *range(s3, s3 + 7), *range(s3 + 10_000, s3 + 10_007)]
    taken = [port for port in ports if process.port_open("127.0.0.1", port)]
    if taken:
        raise RuntimeError(
            f"ports {', '.join(map(str, taken))} of the bench's services are in use (another "
            f"checkout's bench or tests?): run it on another slot, `tally bench --slot N` "
            f"(0-{MAX_SLOT}), e.g. `make bench BENCH_FLAGS=\"--slot 1\"`")


# ---- memory -------------------------------------------------------------------------------

def _memory(pid: int, proportional: bool) -> int:
    """Resident bytes: proportional set size (shared pages split between the processes that
    share them) or RSS; RSS where PSS cannot be read; 0 once the process has exited."""
    try:
        proc = psutil.Process(pid)
        if proportional:
            with contextlib.suppress(psutil.AccessDenied):
                return proc.memory_full_info().pss
        return proc.memory_info().rss
    except psutil.NoSuchProcess:
        return 0


def _descendants(root: int, children: dict[int, list[int]]) -> list[int]:
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


class MemorySampler:
    """Samples each process group's memory (MiB) every `interval` seconds in a thread."""

    def __init__(self, settings: config.Settings, interval: float = SAMPLE_SECONDS):
        self.pid_files = {"postgres": postgres.data_dir(settings) / "postmaster.pid",
                          "s3": settings.run_dir / "s3.pid"}
        self.interval = interval
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-memory", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self.measure()))
            self._stop.wait(self.interval)

    def measure(self) -> dict[str, float]:
        children: dict[int, list[int]] = {}
        for proc in psutil.process_iter(["ppid"]):
            children.setdefault(proc.info["ppid"], []).append(proc.pid)
        groups = {name: _descendants(pid, children) if (pid := process.read_pid(path)) else []
                  for name, path in self.pid_files.items()}
        # The stages' processes: this process's descendants, less the S3 server (its child).
        skip = {os.getpid(), *(pid for pids in groups.values() for pid in pids)}
        groups["pipeline"] = [p for p in _descendants(os.getpid(), children) if p not in skip]
        # PSS where processes share much (PostgreSQL's shared buffers); RSS is far cheaper to
        # read, and the same for the others (PSS of the S3 server costs ~10 ms a sample).
        return {name: sum(_memory(pid, proportional=name == "postgres") for pid in pids) / MIB
                for name, pids in groups.items()}

    def peaks(self, since: float, until: float) -> dict[str, float]:
        """Each group's highest sample in [since, until]; if none fell in it, the nearest."""
        window = [v for t, v in self.samples if since <= t <= until]
        if not window:
            middle = (since + until) / 2
            nearest = min(self.samples, key=lambda s: abs(s[0] - middle), default=None)
            window = [nearest[1] if nearest else self.measure()]
        return {g: max(v.get(g, 0.0) for v in window) for g in GROUPS}


def _own_peaks() -> tuple[float, float]:
    """(this process, its largest waited-for child) maximum resident set, MiB."""
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


class StageFailed(RuntimeError):
    pass


def _call(fn, args: tuple):
    """In a stage's own process: fn(*args), its wall seconds, and the process's exact peaks."""
    # If the machine runs out of memory, the kernel is to kill this process, not another's.
    with contextlib.suppress(OSError):
        Path("/proc/self/oom_score_adj").write_text("1000")
    started = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - started, _own_peaks()


def in_own_process(fn, *args):
    """Run a stage as Airflow runs a task: in a fresh process (its start and imports are not
    timed), so that memory one stage leaves behind is not counted in the next.
    Returns (value, seconds, (peak MiB of that process, of its largest child))."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_call, fn, args).result()


def _figures(seconds: float, rows: int, groups: dict[str, float], stage: str) -> dict:
    involved = {g: round(groups[g]) for g in PROCESSES[stage]}
    return {"seconds": round(seconds, 2),
            "rows_per_second": round(rows / seconds) if rows and seconds > 0 else None,
            "peak_mib": sum(involved.values()), "peak_mib_by_process": involved}


# ---- dbt's own timings --------------------------------------------------------------------

def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def dbt_timings(run_results: Path) -> dict:
    """Seconds per model (slowest first), the tests' total, and the matching models' window."""
    results = json.loads(run_results.read_text())["results"]
    models, tests, window = {}, 0.0, []
    for item in results:
        kind, _, name = item["unique_id"].partition(".")
        if kind == "model":
            models[name.split(".")[-1]] = round(item["execution_time"], 2)
            if name.split(".")[-1] in MATCHING_MODELS:
                window += [_epoch(t[k]) for t in item["timing"] if t["name"] == "execute"
                           for k in ("started_at", "completed_at")]
        elif kind == "test":
            tests += item["execution_time"]
    missing = [m for m in MATCHING_MODELS if m not in models]
    if missing:
        raise RuntimeError(f"dbt built no model named {', '.join(missing)}: update "
                           "bench.MATCHING_MODELS to the project's matching models")
    return {"models": dict(sorted(models.items(), key=lambda kv: -kv[1])),
            "tests_seconds": round(tests, 2),
            "matching_seconds": sum(models[m] for m in MATCHING_MODELS),
            "matching_window": (min(window), max(window)) if window else None}


# ---- the run ------------------------------------------------------------------------------

def run(rows: int, settings: config.Settings | None = None, with_dbt: bool = True,
        with_baselines: bool = True, keep_services: bool = False) -> dict:
    """Generate a day of `rows` platform transactions and time each stage on fresh services."""
    from tally import services

    settings = _fresh_services(settings or bench_settings(config.load()))
    result = {**_header(rows, settings), "stages": {}}
    memory = MemorySampler(settings)
    try:
        with memory:
            day = bench_day(settings, memory, result, BENCH_DATE, rows, parse=True,
                            with_dbt=with_dbt, keep_files=with_baselines)
            # Baselines (tally/devtools/baselines.py) on the same files and warehouse.
            if with_baselines:
                result["baselines"] = _timed(memory, result["stages"], "baselines",
                                             result["rows_in_files"], run_baselines, settings,
                                             day.files)
                # Not a stage of the day: its figures are kept beside the stages (unless the
                # baselines' process died: then it is the failed stage).
                result["baselines_total"] = result["stages"].pop("baselines")
    except StageFailed as exc:
        result["failed_stage"] = str(exc)
        print(f"bench: {exc} failed at {rows:,}: {result['stages'][str(exc)]['failed']}",
              file=sys.stderr)
    finally:
        result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        if not keep_services:
            services.down(settings)
    return result


def run_days(rows: int, days: int, settings: config.Settings | None = None,
             keep_services: bool = False, first: date = BENCH_DATE) -> dict:
    """Reconcile `days` consecutive generated days of `rows` platform transactions on one
    warehouse, in date order, and time each day's stages (see the module's docstring).
    Stops at the first day that fails (a stage, or the gate): later days would rest on it."""
    from tally import services

    if days < 2:
        raise ValueError("run_days is for two days or more; one day is run()")
    settings = _fresh_services(settings or bench_settings(config.load()))
    result = {**_header(rows, settings), "day_count": days, "days": []}
    memory = MemorySampler(settings)
    try:
        with memory:
            for number in range(1, days + 1):
                business_date = first + timedelta(days=number - 1)
                record = {"business_date": business_date.isoformat(),
                          "published": published(number, days), "stages": {}}
                result["days"].append(record)
                bench_day(settings, memory, record, business_date, rows,
                          publish=record["published"])
                print(day_line(number, record), flush=True)
                if not record["stages"]["gate"]["passed"]:
                    result["failed_stage"], result["failed_day"] = "gate", record["business_date"]
                    break
    except StageFailed as exc:
        result["failed_stage"], result["failed_day"] = str(exc), record["business_date"]
        print(f"bench: {exc} failed on {record['business_date']} at {rows:,}: "
              f"{record['stages'][str(exc)]['failed']}", file=sys.stderr)
    finally:
        result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        if not keep_services:
            services.down(settings)
    result["flat_cost"] = flat_cost(result)
    return result


def published(number: int, days: int) -> bool:
    """Which of `days` consecutive days are published: day 2 (compared with the last) and the
    last two; the others end after the gate."""
    return number == 2 or number >= days - 1


def _fresh_services(settings: config.Settings) -> config.Settings:
    """The bench's services stopped, wiped and started again, with an empty warehouse."""
    from tally import pipeline, services

    services.down(settings)
    for part in ("pg", "s3", "inbox", "run", "dbt-target"):
        shutil.rmtree(settings.home / part, ignore_errors=True)
    _check_ports_free(settings)
    settings = services.up(settings)
    pipeline.prepare(settings)
    return settings


def _header(rows: int, settings: config.Settings) -> dict:
    return {"rows": rows, "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "code_version": _code_version(settings),
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
            "machine": machine(settings)}


def _timed(memory: MemorySampler, stages: dict, name: str, rows: int, fn, *args):
    """Run stage `name`, fn(*args), in its own process; record its figures in stages[name]
    (`rows`: the day's rows, for rows/s) and return fn's value. A stage that fails is recorded
    with what it cost until then, and StageFailed is raised."""
    since, clock = time.time(), time.perf_counter()
    try:
        value, seconds, (own, child) = in_own_process(fn, *args)
    except Exception as exc:
        stages[name] = _figures(time.perf_counter() - clock, 0, memory.peaks(since, time.time()),
                                name)
        stages[name]["failed"] = ("its process died (out of memory?)"
                                  if isinstance(exc, BrokenProcessPool) else repr(exc)[:1000])
        raise StageFailed(name) from exc
    groups = memory.peaks(since, time.time())
    # The stage's process (and its largest child, dbt) peaks, exact, where samples missed.
    groups["pipeline"] = max(groups["pipeline"], own + child)
    stages[name] = _figures(seconds, rows, groups, name)
    return value


def bench_day(settings: config.Settings, memory: MemorySampler, record: dict,
              business_date: date, rows: int, publish: bool = True, parse: bool = False,
              with_dbt: bool = True, keep_files: bool = False):
    """One business day, each step timed, through the daily run's steps in their order
    (pipeline.run_day, the daily DAG): generate its files, [parse them], start the run (the
    run lock), land, load, dbt build, gate, then publish, or end as a dry run (`publish`
    false). Fills `record` (stages, rows in the files, dbt's model times) and returns the
    generated day. Its files are deleted once landed, unless `keep_files`."""
    from tally import pipeline, transform
    from tally.devtools import generator

    stages = record["stages"]
    day = _timed(memory, stages, "generate", rows, generator.generate_day, business_date, rows,
                 settings.inbox_dir)
    record["rows_in_files"] = day_rows = sum(json.loads(day.labels.read_text())["rows"].values())
    record["files"] = len(day.files)
    stages["generate"]["rows_per_second"] = round(day_rows / stages["generate"]["seconds"])
    if parse:
        _timed(memory, stages, "parse", day_rows, parse_files, settings, day.files)

    run_id = f"bench__{rows}__{business_date.isoformat()}__{time.time_ns()}"
    pipeline.start_run(settings, run_id, business_date, dry_run=not publish)
    try:
        landed = _timed(memory, stages, "land", day_rows, pipeline.land_day, settings,
                        business_date)
        if not keep_files:
            _discard(day)
        loaded = _timed(memory, stages, "load", day_rows, pipeline.load_day, settings,
                        business_date, None, run_id)  # only=None: every source; as the run
        if landed["landed"] != len(day.files) or loaded["quarantined"]:
            raise RuntimeError(f"the generated day did not load cleanly: {landed['landed']} "
                               f"of {len(day.files)} files landed; quarantined: "
                               f"{loaded['quarantined']}")
        record["rows_loaded"] = loaded["loaded_rows"]
        if not with_dbt:
            pipeline.fail_run(settings, run_id, "the bench stopped after loading (--no-dbt)")
            return day

        pipeline.heartbeat(settings, run_id, business_date)
        _timed(memory, stages, "dbt build", day_rows, transform.build, settings, business_date)
        _matching(settings, memory, record)
        record["scope_rows"] = scope_rows(settings, business_date)
        passed, failure = _timed(memory, stages, "gate", day_rows, check_gate, settings, run_id,
                                 business_date)
        stages["gate"]["passed"] = passed
        if not passed:
            stages["gate"]["failure"] = failure
            pipeline.fail_run(settings, run_id, failure)
        elif publish:
            stages["publish"]["report"] = _timed(memory, stages, "publish", day_rows,
                                                 pipeline.publish, settings, run_id,
                                                 business_date)
        else:
            pipeline.finish_dry_run(settings, run_id)
        stages["end to end"] = _end_to_end(stages, day_rows)
    except BaseException as exc:
        with contextlib.suppress(Exception):  # recorded if the warehouse still answers
            pipeline.fail_run(settings, run_id, exc)
        raise
    return day


def _discard(day) -> None:
    """A landed day's generated files, gone: the raw zone has them now."""
    for path in [*day.files.values(), day.labels]:
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the day's folder, once empty
            path.parent.rmdir()


def parse_files(settings: config.Settings, files: dict[str, Path]) -> None:
    """The parsers alone: every file from disk, the rows thrown away."""
    from tally import formats, sources

    configs = sources.load_all(settings)
    for key, path in files.items():
        formats.parse(path.read_bytes(), configs[key.split(":")[0]], path.name)


def check_gate(settings: config.Settings, run_id: str,
               business_date: date) -> tuple[bool, str | None]:
    """pipeline.check_gate: the verdict recorded on the run; (passed, what failed)."""
    from tally import gate, pipeline

    try:
        pipeline.check_gate(settings, run_id, business_date)
        return True, None
    except gate.GateFailed as exc:
        return False, str(exc)


def _matching(settings: config.Settings, memory: MemorySampler, record: dict) -> None:
    """The matching models' figures within the dbt build just done, from dbt's run_results."""
    stages = record["stages"]
    timings = dbt_timings(settings.home / "dbt-target" / "run_results.json")
    record["dbt_models"] = timings["models"]
    record["dbt_tests_seconds"] = timings["tests_seconds"]
    window = timings["matching_window"]
    groups = memory.peaks(*window) if window else _unfigure(stages["dbt build"])
    stages["matching"] = _figures(timings["matching_seconds"], record["rows_in_files"], groups,
                                  "matching")
    stages["matching"]["models"] = list(MATCHING_MODELS)


def scope_rows(settings: config.Settings, business_date: date) -> dict[str, int]:
    """The day's reconciliation scope (rows per project): its new rows and the open items
    carried into it from earlier dates."""
    with postgres.connect(settings, autocommit=True) as conn:
        new, carried = conn.execute(
            "select count(*) filter (where opened_on >= as_of_date),"
            " count(*) filter (where opened_on < as_of_date)"
            " from intermediate.int_recon__scope where as_of_date = %s",
            (business_date,)).fetchone()
    return {"new": new, "carried": carried}


def _unfigure(figures: dict) -> dict[str, float]:
    return {g: figures["peak_mib_by_process"].get(g, 0.0) for g in GROUPS}


def _end_to_end(stages: dict, day_rows: int) -> dict:
    done = [stages[s] for s in DAILY_STAGES if s in stages]
    seconds = sum(s["seconds"] for s in done)
    by_process = {g: max(s["peak_mib_by_process"].get(g, 0) for s in done) for g in GROUPS}
    return {"seconds": round(seconds, 2), "rows_per_second": round(day_rows / seconds),
            "peak_mib": max(s["peak_mib"] for s in done), "peak_mib_by_process": by_process,
            "stages": [s for s in DAILY_STAGES if s in stages]}


def flat_cost(result: dict) -> dict:
    """Consecutive days: the highest peak of any stage on any day, and (once every day is done)
    day K's end to end over day 2's, the first day that has a day of history."""
    days = result["days"]
    check = {}
    peaks = [(figures["peak_mib"], day["business_date"], name) for day in days
             for name, figures in day["stages"].items() if name != "end to end"]
    if peaks:
        peak, on, stage = max(peaks)
        check.update(peak_mib=peak, peak_day=on, peak_stage=stage,
                     peak_within_target=peak < TARGET_PEAK_MIB)
    if len(days) == result["day_count"] and not result.get("failed_stage"):
        second, last = (days[i]["stages"]["end to end"]["seconds"] for i in (1, -1))
        ratio = round(last / second, 3)
        check.update(end_to_end_day_2=second, end_to_end_last_day=last, end_to_end_ratio=ratio,
                     end_to_end_within_target=ratio <= TARGET_FLAT_COST_RATIO)
        scopes = [days[i].get("scope_rows") for i in (1, -1)]
        if all(scopes):
            # Seconds per 100,000 rows in scope: flat when a day costs its rows plus its open items.
            per = [round(seconds * 100_000 / (scope["new"] + scope["carried"]), 2)
                   for seconds, scope in zip((second, last), scopes, strict=True)]
            check.update(per_100k_in_scope_day_2=per[0], per_100k_in_scope_last_day=per[1],
                         per_100k_in_scope_ratio=round(per[1] / per[0], 3))
    return check


def failed(result: dict) -> bool:
    """Whether a bench result failed: a stage, or the gate of any of its days."""
    return bool(result.get("failed_stage")) or any(
        not day["stages"].get("gate", {}).get("passed", True)
        for day in result.get("days", [result]))


def run_baselines(settings: config.Settings, files: dict[str, Path]) -> dict:
    """tally.devtools.baselines.run_baselines on the day's files. Its failure is recorded, not
    raised: the pipeline's own figures are kept."""
    from tally.devtools import baselines

    try:
        with postgres.connect(settings, autocommit=True) as conn:
            return baselines.run_baselines(settings, files, BENCH_DATE, conn)
    except Exception as exc:  # noqa: BLE001 - reported in the results instead
        print(f"baselines failed: {exc!r}", file=sys.stderr)
        return {"error": {"result": f"failed: {exc!r}"[:500]}}


# ---- the machine --------------------------------------------------------------------------

def _code_version(settings: config.Settings) -> str:
    """The pipeline's code version, marked when the checkout has uncommitted changes."""
    from tally import pipeline

    try:
        changed = subprocess.run(["git", "-C", str(settings.project_dir), "status",
                                  "--porcelain", "--untracked-files=no"], capture_output=True,
                                 text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        changed = ""
    return pipeline.code_version(settings) + (" with uncommitted changes" if changed else "")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(settings: config.Settings) -> dict:
    from tally.services import s3

    with postgres.connect(settings, autocommit=True) as conn:
        server = conn.execute("show server_version").fetchone()[0]
    try:
        weed = subprocess.run([s3._weed(), "version"], capture_output=True, text=True,
                              timeout=10).stdout.split("\n")[0].strip()
    except (OSError, RuntimeError, subprocess.SubprocessError):
        weed = "unknown"
    return {
        "cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": _cpu_model(), "system": platform.platform(),
        "python": platform.python_version(), "postgresql": server,
        "postgresql_settings": {k: v for k, v in postgres.SERVER_OPTIONS.items()
                                if k != "listen_addresses"},
        **{name: _version(package) for name, package in (
            ("dbt-core", "dbt-core"), ("dbt-postgres", "dbt-postgres"), ("pandas", "pandas"),
            ("numpy", "numpy"), ("pyarrow", "pyarrow"), ("psycopg", "psycopg"),
            ("duckdb", "duckdb"), ("airflow", "apache-airflow"),
            ("great-expectations", "great-expectations"))},
        "seaweedfs": weed,
    }


# ---- results ------------------------------------------------------------------------------

def _scale(result: dict) -> tuple[int, int]:
    """What a result is kept by: its consecutive days (1: a day on an empty warehouse), then
    its platform transactions a day."""
    return result.get("day_count", 1), result["rows"]


def save(results: list[dict], path: Path) -> list[dict]:
    """Merge into the JSON file (one entry per scale, i.e. per days and rows, the newest kept);
    return every entry: one-day results first, by rows, then the consecutive-day ones."""
    path = Path(path)
    kept = json.loads(path.read_text()) if path.exists() else []
    scales = {_scale(r) for r in results}
    merged = sorted([r for r in kept if _scale(r) not in scales] + results, key=_scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=2) + "\n")
    return merged


def _number(value) -> str:
    return "" if value is None else f"{value:,}"


def table(result: dict) -> str:
    """One scale's stages as a Markdown table."""
    lines = ["| stage | seconds | rows/s | peak MiB | pipeline (Python + dbt) | PostgreSQL | S3 |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, s in result["stages"].items():
        by = s["peak_mib_by_process"]
        label = {"matching": f"↳ matching ({' + '.join(MATCHING_MODELS)})",
                 "end to end": "**end to end** (land → publish)"}.get(name, name)
        if name == "gate" and "passed" in s:
            label += " (passed)" if s["passed"] else " (**FAILED**)"
        if s.get("failed"):
            label += f" (**FAILED**: {s['failed']})"
        lines.append(f"| {label} | {s['seconds']:,.2f} | {_number(s['rows_per_second'])} | "
                     f"{s['peak_mib']:,} | {_number(by.get('pipeline'))} | "
                     f"{_number(by.get('postgres'))} | {_number(by.get('s3'))} |")
    return "\n".join(lines)


def _targets(result: dict) -> str:
    stages = result["stages"]
    peak = max(s["peak_mib"] for s in stages.values())
    checks = [f"peak memory {peak:,} MiB {'≤' if peak <= TARGET_PEAK_MIB else '>'} "
              f"{TARGET_PEAK_MIB:,} MiB {'✓' if peak <= TARGET_PEAK_MIB else '✗'}"]
    if result["rows"] >= 10_000_000:
        for name, limit in (("end to end", TARGET_END_TO_END_SECONDS_10M),
                            ("matching", TARGET_MATCHING_SECONDS_10M)):
            if name in stages:
                ok = stages[name]["seconds"] < limit
                checks.append(f"{name} {stages[name]['seconds']:,.0f} s "
                              f"{'<' if ok else '≥'} {limit} s {'✓' if ok else '✗'}")
    else:
        checks.append("the time targets (end to end < 300 s, matching < 60 s) apply at 10M")
    return "Targets: " + "; ".join(checks) + "."


def _models_table(result: dict, top: int = 12) -> str:
    models = result.get("dbt_models") or {}
    shown = list(models)[:top] + [m for m in MATCHING_MODELS if m in list(models)[top:]]
    lines = ["| dbt model (slowest first) | seconds |", "| --- | ---: |"]
    lines += [f"| {m}{' (matching)' if m in MATCHING_MODELS else ''} | {models[m]:,.2f} |"
              for m in shown]
    rest = sum(v for m, v in models.items() if m not in shown)
    lines.append(f"| {len(models) - len(shown)} other models | {rest:,.2f} |")
    lines.append(f"| all dbt tests | {result.get('dbt_tests_seconds', 0):,.2f} |")
    return "\n".join(lines)


def _baselines_table(results: list[dict]) -> str | None:
    """Each baseline's figures beside Tally's matching and end-to-end seconds at that scale."""
    shown = ("seconds", "rows_per_second", "peak_mib", "peak_rss_mib")
    rows = []
    for result in results:
        stages = result.get("stages", {})
        for name, figures in (result.get("baselines") or {}).items():
            figures = figures if isinstance(figures, dict) else {"result": figures}
            seconds = figures.get("seconds")
            rate = figures.get("rows_per_second") or (
                round(result["rows_in_files"] / seconds) if seconds else None)
            ratios = [f"{seconds / stages[s]['seconds']:.2f}" if seconds and s in stages else ""
                      for s in ("matching", "end to end")]
            other = "; ".join(
                f"{k}: " + (", ".join(f"{a} {b:,}" if isinstance(b, int) else f"{a} {b}"
                                      for a, b in v.items()) if isinstance(v, dict) else str(v))
                for k, v in figures.items()
                if k not in shown and v is not None and not k.startswith("ratio_"))
            rows.append(f"| {result['rows']:,} | {name} | {_number(seconds)} | {_number(rate)} | "
                        f"{_number(figures.get('peak_mib', figures.get('peak_rss_mib')))} | "
                        f"{ratios[0]} | {ratios[1]} | {other} |")
    if not rows:
        return None
    return "\n".join([
        "Seconds of each baseline over Tally's matching and end-to-end seconds at the same scale "
        "(below 1: the baseline is faster).\n",
        "| transactions | baseline | seconds | rows/s | peak MiB | × matching | × end to end | "
        "notes |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |", *rows])


def _machine_table(m: dict) -> str:
    pg = ", ".join(f"{k}={v}" for k, v in m["postgresql_settings"].items())
    rows = [("cores", m["cores"]), ("memory", f"{m['memory_gib']} GiB"), ("CPU", m["cpu"]),
            ("system", m["system"]), ("Python", m["python"]),
            ("PostgreSQL", f"{m['postgresql']} ({pg})"),
            ("dbt", f"dbt-core {m['dbt-core']}, dbt-postgres {m['dbt-postgres']}"),
            ("pandas / numpy / pyarrow", f"{m['pandas']} / {m['numpy']} / {m['pyarrow']}"),
            ("psycopg", m["psycopg"]), ("DuckDB", m["duckdb"]), ("Airflow", m["airflow"]),
            ("Great Expectations", m["great-expectations"]), ("SeaweedFS", m["seaweedfs"])]
    return "\n".join(["| | |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in rows)])


DEFAULT_NOTES = """## Notes

Where the time and memory go, and what would fix it, is written here by hand after a run.
"""


def write_markdown(results: list[dict], path: Path) -> None:
    """docs/benchmarks.md: the machine, a table per scale, the baselines, then the notes (the
    part of an existing file below KEEP_MARKER is kept)."""
    path = Path(path)
    notes = DEFAULT_NOTES
    if path.exists() and KEEP_MARKER in path.read_text():
        notes = path.read_text().split(KEEP_MARKER, 1)[1].strip("\n") + "\n"
    parts = [
        "# Benchmarks",
        "Written by `tally bench` (`make bench`: 100 000 and 1 000 000 platform transactions a "
        "day; `make bench-10m`: ten million; `make bench ROWS=\"N ...\"`; `make bench-days`: "
        "100 000 a day for 30 consecutive days). Raw figures, per scale: "
        "[benchmarks.json](benchmarks.json). The bench runs the real pipeline on "
        "services of its own (PostgreSQL and S3 under `.tally/bench`), one stage after the "
        "other, on a generated day: N platform transactions plus their channel bills, bank "
        "statements, custody flows, settlement and balances files.",
        "- Each stage runs in a fresh Python process, as Airflow runs each task; **seconds** "
        "is the wall time of its work (not the process start and imports). **rows/s**: rows "
        "in all of the day's files divided by those seconds (the same numerator for every "
        "stage).\n"
        "- **peak MiB**: the peak memory of the processes the stage involves, the sum of each "
        "group's peak (an upper bound): the stage's Python process with its children (dbt "
        "runs as a subprocess), the PostgreSQL server (postmaster and backends), the S3 "
        f"server. Sampled every {SAMPLE_SECONDS} s: PostgreSQL's processes by proportional set "
        "size (its shared buffers count once, not once per backend), the others by resident "
        "set size; the stage process's and dbt's exact peaks (getrusage) where higher.\n"
        "- **generate** and **parse** are not part of a daily run: generate writes the files; "
        "parse parses them from disk and throws the result away (the parsers alone). "
        "**load** is fetch from S3 + parse + self-checks + COPY. **matching** is within dbt "
        "build: the sum of the reconciliation models' times from dbt's `run_results.json`. "
        "**end to end** = land + load + dbt build + gate + publish: what a daily run costs "
        "once the files exist (Airflow's own scheduling overhead not included).\n"
        "- **Consecutive days** (`tally bench --rows N --days K`): K generated days from "
        f"{BENCH_DATE} reconciled in date order on one warehouse, as the daily run does (run "
        "lock, land, load, dbt build, gate, publish), so each day's suspense and settlements "
        "carry into the next; each day's files are generated just before it and deleted once "
        "landed. To reach a long history quickly only day 2 and the last two days are "
        "published; the others end after the gate (dry runs). Flat cost: day K's end to end "
        f"at most {TARGET_FLAT_COST_RATIO:g} × day 2's (the first day with history), every "
        f"stage's peak under {TARGET_PEAK_MIB:,} MiB.",
        "## Machine",
        _machine_table(results[-1]["machine"]),
    ]
    for result in results:
        run_line = (
            f"run {result['started_at']} at {result['code_version']}; load average "
            f"{result['load_average_before'][0]} before, {result['load_average_after'][0]} "
            "after (1 min)."
            + ("" if result["machine"] == results[-1]["machine"] else
               f" Machine: {result['machine']['cores']} cores, "
               f"{result['machine']['memory_gib']} GiB, {result['machine']['cpu']}."))
        if "days" in result:
            parts += days_section(result, run_line[0].upper() + run_line[1:])
            continue
        loaded = result.get("rows_loaded")
        parts.append(
            f"## {result['rows']:,} platform transactions\n\n"
            + (f"{result['rows_in_files']:,} rows in {result['files']} files" if "files" in result
               else "No files were generated")
            + (f" ({loaded:,} loaded into raw tables)" if loaded else "")
            + f"; {run_line}")
        if result.get("note"):
            parts.append(f"Note: {result['note']}")
        parts.append(table(result))
        parts.append(_targets(result))
        if result.get("dbt_models"):
            parts.append(_models_table(result))
    baselines = _baselines_table(results)
    parts += ["## Baselines", baselines or "No baseline results in these runs "
              "(`--no-baselines`)."]
    parts += [KEEP_MARKER, notes]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(p.strip("\n") for p in parts) + "\n")


# ---- consecutive days ---------------------------------------------------------------------

DAY_COLUMNS = ("generate", "land", "load", "dbt build", "matching", "gate", "publish")


def _peak(stages: dict) -> tuple[int, str]:
    """The day's highest stage peak (MiB) and its stage."""
    return max(((s["peak_mib"], name) for name, s in stages.items() if name != "end to end"),
               default=(0, ""))


def _cell(stages: dict, name: str) -> str:
    figures = stages.get(name)
    if figures is None:
        return "–"
    if figures.get("failed") or figures.get("passed") is False:
        return f"{figures['seconds']:,.2f} **FAILED**"
    return f"{figures['seconds']:,.2f}"


def day_line(number: int, day: dict) -> str:
    """A day's figures on one line (the bench's progress)."""
    stages = day["stages"]
    peak, stage = _peak(stages)
    return (f"day {number} {day['business_date']}: "
            + ", ".join(f"{name} {_cell(stages, name)} s" for name in (*DAY_COLUMNS, "end to end")
                        if name in stages)
            + f"; peak {peak:,} MiB ({stage})")


def days_table(result: dict) -> str:
    """Consecutive days: each day's seconds per stage, end to end and peak memory."""
    lines = ["| day | date | in scope: new + carried | " + " | ".join(DAY_COLUMNS)
             + " | end to end | peak MiB |",
             "| ---: | --- | ---: |" + " ---: |" * (len(DAY_COLUMNS) + 2)]
    for number, day in enumerate(result["days"], 1):
        stages = day["stages"]
        peak, stage = _peak(stages)
        cells = [_cell(stages, name) for name in (*DAY_COLUMNS, "end to end")]
        scope = day.get("scope_rows")
        held = f"{scope['new']:,} + {scope['carried']:,}" if scope else "–"
        lines.append(f"| {number} | {day['business_date']} | {held} | {' | '.join(cells)} | "
                     f"{peak:,} ({stage}) |")
    return "\n".join(lines)


def flat_cost_text(result: dict) -> str:
    """The flat-cost check in words: day K against day 2, and the highest peak."""
    check, parts = result.get("flat_cost") or {}, []
    if "end_to_end_ratio" in check:
        ok = check["end_to_end_within_target"]
        parts.append(f"day {result['day_count']}'s end to end {check['end_to_end_last_day']:,.2f}"
                     f" s / day 2's {check['end_to_end_day_2']:,.2f} s = "
                     f"{check['end_to_end_ratio']:.2f} ({'≤' if ok else '>'} "
                     f"{TARGET_FLAT_COST_RATIO} {'✓' if ok else '✗'})")
    else:
        parts.append(f"day {result['day_count']} against day 2 not measured: the run stopped "
                     f"at {result.get('failed_stage')} on {result.get('failed_day')}")
    if "per_100k_in_scope_ratio" in check:
        parts.append(f"per 100,000 rows in scope (new rows + open items carried) "
                     f"{check['per_100k_in_scope_last_day']:,.2f} s on day {result['day_count']}"
                     f" / {check['per_100k_in_scope_day_2']:,.2f} s on day 2 = "
                     f"{check['per_100k_in_scope_ratio']:.2f}")
    if "peak_mib" in check:
        ok = check["peak_within_target"]
        parts.append(f"peak memory {check['peak_mib']:,} MiB ({check['peak_stage']} on "
                     f"{check['peak_day']}) {'<' if ok else '≥'} {TARGET_PEAK_MIB:,} MiB "
                     f"{'✓' if ok else '✗'}")
    return "Flat cost: " + "; ".join(parts) + "."


def days_chart(result: dict) -> str:
    """A Mermaid chart (GitHub draws it): end to end per day as bars, matching as a line."""
    days = result["days"]
    series = {name: [d["stages"].get(name, {}).get("seconds", 0) for d in days]
              for name in ("end to end", "matching")}
    top = max([*series["end to end"], *series["matching"], 1])
    return "\n".join([
        "```mermaid", "xychart-beta",
        '    title "Seconds per day: end to end (bars), matching (line)"',
        f'    x-axis "day" [{", ".join(json.dumps(str(n)) for n in range(1, len(days) + 1))}]',
        f'    y-axis "seconds" 0 --> {math.ceil(top * 1.1)}',
        f"    bar [{', '.join(f'{v:g}' for v in series['end to end'])}]",
        f"    line [{', '.join(f'{v:g}' for v in series['matching'])}]",
        "```"])


def _days_models_table(result: dict, top: int = 12) -> str | None:
    """dbt's model times on day 2 and on the last day, the slowest on the last day first."""
    days = [d for d in result["days"] if d.get("dbt_models")]
    if len(days) < 3:
        return None
    second, last = days[1], days[-1]
    number = result["days"].index(last) + 1
    models = list(last["dbt_models"])
    shown = models[:top] + [m for m in MATCHING_MODELS if m in models[top:]]
    lines = [f"| dbt model (slowest on day {number} first) | day 2 | day {number} |",
             "| --- | ---: | ---: |"]
    lines += [f"| {m}{' (matching)' if m in MATCHING_MODELS else ''} | "
              f"{second['dbt_models'].get(m, 0):,.2f} | {last['dbt_models'][m]:,.2f} |"
              for m in shown]
    rest = [sum(v for m, v in d["dbt_models"].items() if m not in shown) for d in (second, last)]
    lines.append(f"| {len(models) - len(shown)} other models | {rest[0]:,.2f} | {rest[1]:,.2f} |")
    lines.append(f"| all dbt tests | {second.get('dbt_tests_seconds', 0):,.2f} | "
                 f"{last.get('dbt_tests_seconds', 0):,.2f} |")
    return "\n".join(lines)


def _days_named(numbers: list[str]) -> str:
    if not numbers:
        return "no day"
    if len(numbers) == 1:
        return f"day {numbers[0]}"
    return f"days {', '.join(numbers[:-1])} and {numbers[-1]}"


def days_section(result: dict, run_line: str) -> list[str]:
    """The Markdown of a consecutive-days result: what ran, the table, the check, the chart."""
    days = result["days"]
    published_days = [str(n) for n, d in enumerate(days, 1) if d["published"]]
    rows_a_day = sorted(d["rows_in_files"] for d in days if "rows_in_files" in d)
    done = (f"{result['day_count']} business days" if len(days) == result["day_count"] else
            f"{len(days)} of {result['day_count']} business days")
    parts = [
        f"## {result['rows']:,} platform transactions a day, {result['day_count']} consecutive "
        "days",
        f"{done}, {days[0]['business_date']} to {days[-1]['business_date']}, reconciled in order "
        "on one warehouse, each day's suspense and settlements carried into the next; "
        + (f"{rows_a_day[0]:,} to {rows_a_day[-1]:,} rows in {days[0]['files']} files a day; "
           if rows_a_day else "")
        + f"{_days_named(published_days)} published, "
        "the others end after the gate (dry runs, no publish in their end to end). "
        + run_line,
        days_table(result),
        flat_cost_text(result),
        "End to end (bars) and matching (line), seconds per day:",
        days_chart(result),
    ]
    models = _days_models_table(result)
    return parts + ([models] if models else [])
