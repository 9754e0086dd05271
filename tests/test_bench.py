"""The benchmark at a small scale: every stage runs for real on the bench's own services, is
timed and measured, the day passes the gate and is published; the results make the table."""

from __future__ import annotations

import json
import socket

import pandas as pd
import pytest

from tally import bench, config, loading, services, storage

STAGES = ["generate", "parse", "land", "load", "dbt build", "matching", "gate", "publish",
          "end to end"]


@pytest.fixture(scope="module")
def small_run():
    settings = bench.bench_settings(config.load())
    try:
        result = bench.run(2000, settings=settings, with_baselines=False, keep_services=True)
        settings = services.ensure_secrets(settings)  # the credentials its services made
        prefix = result["stages"]["publish"]["report"].removeprefix(
            f"s3://{settings.s3.published_bucket}/")
        published = storage.list_keys(storage.client(settings), settings.s3.published_bucket,
                                      prefix)
    finally:
        services.down(settings)
    return result, published


def test_every_stage_is_timed_and_measured(small_run):
    result, _ = small_run
    stages = result["stages"]
    assert list(stages) == STAGES
    for name, figures in stages.items():
        assert figures["seconds"] > 0, name
        assert figures["rows_per_second"] > 0, name
        assert figures["peak_mib"] > 0, name
    # The services' own processes were found and measured while the day was loaded.
    assert stages["load"]["peak_mib_by_process"]["postgres"] > 0
    assert stages["land"]["peak_mib_by_process"]["s3"] > 0
    assert set(stages["parse"]["peak_mib_by_process"]) == {"pipeline"}
    daily = sum(stages[s]["seconds"] for s in ("land", "load", "dbt build", "gate", "publish"))
    assert stages["end to end"]["seconds"] == pytest.approx(daily, abs=0.05)
    assert stages["matching"]["seconds"] <= stages["dbt build"]["seconds"]
    assert set(bench.MATCHING_MODELS) <= set(result["dbt_models"])
    assert result["rows_loaded"] == result["rows_in_files"] > 2000


def test_the_day_passes_the_gate_and_is_published(small_run):
    result, published = small_run
    assert result["stages"]["gate"]["passed"] is True
    assert any(key.endswith("/_manifest.json") for key in published)
    assert any(key.endswith("outcomes.csv") for key in published)


def test_the_table_has_every_stage_and_keeps_the_notes(small_run, tmp_path):
    result, _ = small_run
    with_baselines = {**result, "rows": 3000,
                      "baselines": {"pandas": {"seconds": 1.5, "rows_per_second": 2000,
                                               "peak_mib": 300, "unmatched": 12}}}
    results = bench.save([result, with_baselines], tmp_path / "benchmarks.json")
    assert [r["rows"] for r in json.loads((tmp_path / "benchmarks.json").read_text())] == [
        2000, 3000]
    markdown = tmp_path / "benchmarks.md"
    bench.write_markdown(results, markdown)
    text = markdown.read_text()
    for label in ("| generate |", "| parse |", "| land |", "| load |", "| dbt build |",
                  "| ↳ matching (int_recon__scope + fct_matches + int_recon__unmatched"
                  " + fct_outcomes) |",
                  "| gate (passed) |", "| publish |", "| **end to end** (land → publish) |"):
        assert text.count(label) == 2, label
    assert f"| cores | {result['machine']['cores']} |" in text
    assert "| 3,000 | pandas | 1.5 | 2,000 | 300 | " in text
    assert "| unmatched: 12 |" in text

    markdown.write_text(text + "\nThe gate spends its time in one query.\n")
    bench.write_markdown(results[:1], markdown)
    again = markdown.read_text()
    assert "The gate spends its time in one query." in again
    assert "## 3,000 platform transactions" not in again


def test_copy_rows_sends_a_frame_in_pieces_unchanged(conn, monkeypatch):
    monkeypatch.setattr(loading, "COPY_CHUNK_ROWS", 3)
    frame = pd.DataFrame({
        "line_no": range(2, 12), "note": [f'row "{i}", with a comma' for i in range(10)],
        "amount_minor": [i * 101 for i in range(10)],
        "amount_inexact": [i % 2 == 0 for i in range(10)],
    }).iloc[2:]  # an index that does not start at 0, as after a filter
    with conn.transaction():
        conn.execute("create temporary table copy_probe (file_id bigint, record_no integer,"
                     " line_no integer, note text, amount_minor bigint, amount_inexact boolean)"
                     " on commit drop")
        count = loading.copy_rows(conn, "pg_temp.copy_probe",
                                  ["note", "amount_minor", "amount_inexact"], 42, frame)
        rows = conn.execute("select * from pg_temp.copy_probe order by record_no").fetchall()
    assert count == 8
    assert rows == [(42, n, line, note, amount, inexact) for n, (line, note, amount, inexact)
                    in enumerate(frame.itertuples(index=False), 1)]


def test_the_bench_takes_its_slots_ports_and_refuses_ports_in_use():
    base = config.load()
    slot_2 = bench.bench_settings(base, slot=2)
    assert (slot_2.pg.port, slot_2.s3.port) == (base.pg.port + 3, base.s3.port + 30)
    with pytest.raises(ValueError):
        bench.bench_settings(base, slot=bench.MAX_SLOT + 1)
    with socket.socket() as other:  # a port another checkout's bench would hold
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        settings = bench.bench_settings(config.load({**base.env,
                                                     "TALLY_PG_PORT": str(taken - 1)}))
        assert settings.pg.port == taken
        with pytest.raises(RuntimeError, match=rf"ports {taken}\b.*--slot N"):
            bench._check_ports_free(settings)
