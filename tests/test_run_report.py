"""What a run shows: progress lines, the run summary, the missing-hook warning, facts for CI.

One `dbt run --log-format json` of a project with on_run_end() and models that
export (one of them long enough for progress lines at a short interval), fail,
are switched off, or have s3_export meta but no export hook.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dbt_s3_export.report import ExportRecord, RunReport

from .support import DbtProject, S3Server, export_meta, exported_model, s3_client

pytestmark = pytest.mark.dbt

BIG_ROWS = 200_000


@pytest.fixture(scope="module")
def report_run(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> dict[str, Any]:
    bucket = "run-report"
    s3_server.create_bucket(bucket)
    project = DbtProject(
        tmp_path_factory.mktemp("report"),
        s3_server.endpoint,
        threads=2,
        env={"DBT_S3_EXPORT_PROGRESS_SECONDS": "0.05"},
        project_config={"on-run-end": ["{{ dbt_s3_export.on_run_end() }}"]},
    )
    project.write_project()
    project.model(
        "big",
        exported_model(
            export_meta(bucket, "big/", "csv"),
            f"select range as id, 'value ' || range as v from range({BIG_ROWS})",
        ),
    )
    project.model(
        "one_row", exported_model(export_meta(bucket, "one/one_row.tsv", "csv"), "select 1 as id")
    )
    project.model(
        "unreachable",
        exported_model(export_meta("no-such-bucket-here", "x.csv", "csv"), "select 1 as id"),
    )
    project.model(
        "switched_off",
        exported_model(
            export_meta(bucket, "off.csv", "csv", ", 'enabled': false"), "select 1 as id"
        ),
    )
    # s3_export meta but no export hook: exports nothing, so on_run_end() warns.
    meta = export_meta(bucket, "nohook.csv", "csv")
    project.model(
        "forgot_the_hook", f"{{{{ config(meta={{'s3_export': {meta}}}) }}}}\nselect 1 as id"
    )
    project.model("plain", "select 1 as id")
    result = project.dbt("run", "--log-format", "json", check=False)
    events = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    return {
        "project": project,
        "bucket": bucket,
        "s3": s3_client(s3_server.endpoint),
        "returncode": result.returncode,
        "events": events,
        "messages": [e["info"]["msg"] for e in events],
    }


def _ours(events: list[dict[str, Any]], start: str) -> list[dict[str, Any]]:
    found = []
    for event in events:
        if event["data"].get("name") == "S3Export" and event["info"]["msg"].startswith(
            "S3Export adapter: " + start
        ):
            found.append(event)
    return found


def test_long_export_logs_progress_lines(report_run: dict[str, Any]) -> None:
    lines = _ours(report_run["events"], "s3_export: big -> s3://run-report/big/: ")
    assert lines, "no progress line for the long export"
    text = lines[0]["info"]["msg"]
    assert " rows, " in text and " written (" in text and "/s), " in text, text
    assert " uploaded, " in text and " s so far" in text, text


def test_summary_line_of_each_export_carries_its_facts(report_run: dict[str, Any]) -> None:
    [one] = _ours(report_run["events"], "s3_export: one_row -> s3://run-report/one/one_row.tsv ")
    assert "(csv): 1 row, 1 file, " in one["info"]["msg"]
    facts = one["data"]["args"][0]
    assert facts["rows"] == 1 and facts["files"] == 1 and facts["status"] == "success"
    assert facts["destination"] == "s3://run-report/one/one_row.tsv"
    [big] = _ours(report_run["events"], "s3_export: big -> s3://run-report/big/ (csv): ")
    assert f"{BIG_ROWS:,} rows, 1 file, " in big["info"]["msg"]
    assert big["data"]["args"][0]["rows"] == BIG_ROWS
    assert big["data"]["args"][0]["unique_id"] == "model.export_test.big"


def test_run_end_warns_once_about_models_without_the_hook(report_run: dict[str, Any]) -> None:
    warnings = [m for m in report_run["messages"] if "ran without exporting" in m]
    assert len(warnings) == 1, warnings
    assert (
        "1 model with s3_export meta ran without exporting anything: forgot_the_hook."
        in (warnings[0])
    )
    assert "dbt_s3_export.export_to_s3()" in warnings[0]
    [event] = [e for e in report_run["events"] if "ran without exporting" in e["info"]["msg"]]
    assert event["info"]["level"] == "warn"


def test_run_end_sums_up_the_exports(report_run: dict[str, Any]) -> None:
    assert report_run["returncode"] != 0  # the unreachable bucket fails its model
    [summary] = _ours(report_run["events"], "s3_export: 4 exports this run")
    assert summary["info"]["msg"].endswith(
        f"(2 succeeded, 1 failed, 1 skipped): {BIG_ROWS + 1:,} rows, 2 files, "
        + summary["info"]["msg"].rsplit(", ", 1)[1]
    )
    totals = summary["data"]["args"][0]
    assert totals["exports"] == 4 and totals["failed"] == 1 and totals["skipped"] == 1
    assert totals["rows"] == BIG_ROWS + 1
    # The slowest is the success that took longest (on a loaded machine, not always "big").
    facts = [(e["data"].get("args") or [None])[0] for e in _ours(report_run["events"], "")]
    exports = [f for f in facts if isinstance(f, dict) and "status" in f and "model" in f]
    done = [f for f in exports if f["status"] == "success"]
    assert {f["model"] for f in done} == {"big", "one_row"}
    slowest = max(done, key=lambda f: f["seconds"])
    assert totals["slowest"] == slowest
    line = f"s3_export: slowest: {slowest['model']} -> {slowest['destination']} ("
    assert _ours(report_run["events"], line)
    assert _ours(
        report_run["events"], "s3_export: failed: unreachable -> s3://no-such-bucket-here/x.csv"
    )


def test_results_artifact_lists_every_export(report_run: dict[str, Any]) -> None:
    target = Path(report_run["project"].root) / "target"
    results = json.loads((target / "s3_export_results.json").read_text())
    run_results = json.loads((target / "run_results.json").read_text())
    assert results["metadata"]["invocation_id"] == run_results["metadata"]["invocation_id"]
    by_model = {e["model"]: e for e in results["exports"]}
    assert set(by_model) == {"big", "one_row", "unreachable", "switched_off"}
    assert by_model["big"]["rows"] == BIG_ROWS and by_model["big"]["bytes"] > 0
    assert by_model["big"]["status"] == "success" and by_model["big"]["seconds"] > 0
    assert by_model["switched_off"]["status"] == "skipped"
    failed = by_model["unreachable"]
    assert failed["status"] == "error" and "no-such-bucket-here" in failed["message"]
    assert failed["destination"] == "s3://no-such-bucket-here/x.csv"
    assert results["totals"]["files"] == 2
    # dbt's own record of the failed model carries the export's message.
    [model] = [r for r in run_results["results"] if r["unique_id"].endswith(".unreachable")]
    assert model["status"] == "error" and "s3_export failed" in model["message"]


def test_objects_get_the_content_type_of_their_extension(report_run: dict[str, Any]) -> None:
    s3, bucket = report_run["s3"], report_run["bucket"]
    head = s3.head_object(Bucket=bucket, Key="one/one_row.tsv")
    assert head["ContentType"] == "text/tab-separated-values"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="big/")["Contents"]]
    data = next(k for k in keys if k.endswith(".csv"))
    assert s3.head_object(Bucket=bucket, Key=data)["ContentType"] == "text/csv"
    manifest = next(k for k in keys if k.endswith("_manifest.json"))
    assert s3.head_object(Bucket=bucket, Key=manifest)["ContentType"] == "application/json"


def test_switched_off_run_says_so_once_with_the_count(report_run: dict[str, Any]) -> None:
    """With the var false, on_run_end() says once that exports are off, and for how many."""
    project = report_run["project"]
    result = project.dbt(
        "run", "-s", "one_row", "switched_off", "plain", "--vars", "{dbt_s3_export_enabled: false}"
    )
    told = [line for line in result.output.splitlines() if "switched off by var" in line]
    # one_row and switched_off have s3_export meta and the hook; plain has neither.
    assert len(told) == 1, result.output
    assert told[0].endswith(
        "s3_export: exports are switched off by var dbt_s3_export_enabled (false): skipped the "
        "exports of 2 models this run. Drop the var, or set it to true, to export"
    ), told[0]
    assert "without exporting anything" not in result.output


def test_the_artifact_renders_each_record_once_however_often_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = RunReport("inv-1")
    rendered = []
    facts = ExportRecord.facts

    def counted(record: ExportRecord) -> dict[str, Any]:
        rendered.append(record.model)
        return facts(record)

    monkeypatch.setattr(ExportRecord, "facts", counted)
    for i in range(30):
        report.add(
            ExportRecord(f"m_{i}", f"model.p.m_{i}", f"s3://b/m_{i}/", "parquet", "success", rows=i)
        )
        written = json.loads(report.write(tmp_path).read_text())
        assert [e["model"] for e in written["exports"]] == [f"m_{j}" for j in range(i + 1)]
    # Each record is rendered when it is added, not again at every write (m_0, the
    # slowest by its first place among equals, is also rendered for the totals).
    assert [rendered.count(f"m_{i}") for i in range(1, 30)] == [1] * 29
    monkeypatch.setattr(ExportRecord, "facts", facts)
    whole = report.document()
    assert {k: v for k, v in written.items() if k != "metadata"} == {
        k: v for k, v in whole.items() if k != "metadata"
    }
    assert written["exports"][3] == ExportRecord.facts(report.records[3])
    assert json.loads(RunReport().text())["exports"] == []
