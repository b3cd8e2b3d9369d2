"""Small exports: where the fixed time of an export goes, and how it compares with DuckDB's COPY.

Two modes, both against one fresh S3 server per server kind (SeaweedFS, moto):

- ``--phases`` runs one export per format (1,000 rows, 20 partitions) in a fresh
  process, instrumented: for each phase (client, config, schema, probe, lease,
  claims, manifest read, source open, writer start, encode, upload wait, manifest,
  clean-up) its wall time, the process's CPU time and the S3 requests sent during
  it. Three exports in the process: the first (cold: clients built, probe
  sent), the same export again (what every later run of a model costs), and a
  first export to a new folder from the warm process (a new model in a dbt run).
- the default compares our export with DuckDB's ``COPY ... TO 's3://'`` (httpfs
  1.5.5) on the same server in the same process, alternating, each after one
  untimed warm-up: 1,000 and 200,000 rows, a single object and 20 partitions,
  three formats. Our time includes parsing the config and building the source,
  as the dbt plugin does for each model; every run after the warm-up replaces
  the previous one (a dbt model's daily run). DuckDB writes to a new folder each
  time (its partitioned COPY refuses to write into one that exists).

Run it through ``benchmarks/run --small`` (``--quick``: one size, fewer runs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # the servers and DuckDB's S3 settings are the big benchmark's

BUCKET = bench.BUCKET
PARTITIONS = bench.PARTITIONS
FORMATS = bench.FORMATS
SUFFIX = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}


# --------------------------------------------------------------------------- phases


class Phases:
    """Wall time, process CPU and S3 requests per named phase (exclusive of nested ones).

    A phase is entered and left on the thread that runs the export; requests sent
    from other threads (the upload pool) count towards the phase that thread is in.
    """

    def __init__(self) -> None:
        self.stack: list[list[Any]] = []  # [name, wall start, cpu start, child wall, child cpu]
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.requests: dict[str, dict[str, int]] = {}
        self.lock = threading.Lock()
        self.owner: int | None = None
        # Steps that run beside the export's thread (a folder commit's beginning runs
        # while the rows are read): thread -> phase, timed on that thread alone.
        self.side: dict[int, str] = {}

    def enter(self, name: str) -> None:
        self.stack.append([name, time.perf_counter(), time.process_time(), 0.0, 0.0])

    def leave(self) -> None:
        name, wall0, cpu0, child_wall, child_cpu = self.stack.pop()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        self.wall[name] = self.wall.get(name, 0.0) + wall - child_wall
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu - child_cpu
        if self.stack:
            self.stack[-1][3] += wall
            self.stack[-1][4] += cpu

    def request(self, operation: str) -> None:
        with self.lock:
            side = self.side.get(threading.get_ident())
            if side is None and self.side and _helper_of_begin():
                side = next(iter(self.side.values()))  # a claim check sent together
            name = side or (self.stack[-1][0] if self.stack else "outside")
            ops = self.requests.setdefault(name, {})
            ops[operation] = ops.get(operation, 0) + 1

    def wrap(self, owner: Any, attr: str, name: str) -> None:
        original = getattr(owner, attr, None)
        if original is None:  # another version of the package: not every step is there
            return
        phases = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != phases.owner:
                return original(*args, **kwargs)
            phases.enter(name)
            try:
                return original(*args, **kwargs)
            finally:
                phases.leave()

        setattr(owner, attr, timed)

    def wrap_beside(self, owner: Any, attr: str, name: str) -> None:
        """Time a step that runs on another thread: its wall and that thread's CPU.

        Such a phase overlaps the others (its wall is not part of the export's sum);
        the requests sent from its thread count towards it.
        """
        original = getattr(owner, attr, None)
        if original is None:
            return
        phases = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == phases.owner:  # run in line (older versions)
                phases.enter(name)
                try:
                    return original(*args, **kwargs)
                finally:
                    phases.leave()
            ident = threading.get_ident()
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            phases.side[ident] = name
            try:
                return original(*args, **kwargs)
            finally:
                del phases.side[ident]
                with phases.lock:
                    phases.wall[name] = phases.wall.get(name, 0.0) + time.perf_counter() - wall0
                    phases.cpu[name] = phases.cpu.get(name, 0.0) + time.thread_time() - cpu0

        setattr(owner, attr, timed)

    def watch_client(self, client: Any) -> None:
        if getattr(client, "_bench_watched", False):
            return
        client.meta.events.register(
            "before-call.s3", lambda model, **_: self.request(model.name), unique_id="bench"
        )
        client._bench_watched = True

    def reset(self) -> None:
        self.wall, self.cpu, self.requests = {}, {}, {}


def _helper_of_begin() -> bool:
    """Whether this thread sends requests for a commit's beginning (the claim checks)."""
    return threading.current_thread().name.startswith("s3-export-together")


PHASE_ORDER = [
    "client",
    "config",
    "source",
    "schema",
    "probe",
    "lease",
    "claims",
    "begin",
    "begin (beside)",
    "source open",
    "writer start",
    "encode",
    "upload wait",
    "manifest",
    "clean-up",
    "other",
]


def _rows_module() -> Any:
    """The module with ``export_source`` (source/rows.py; source/batches.py before it moved)."""
    try:
        from dbt_s3_export.source import rows

        return rows
    except ImportError:
        from dbt_s3_export.source import batches

        return batches


def instrument(phases: Phases) -> None:
    """Wrap the export's steps (the code is the package's; only the timing is added)."""
    from dbt_s3_export import export
    from dbt_s3_export.commit import folder, lease, single, store
    from dbt_s3_export.encoding import files
    from dbt_s3_export.options import config
    from dbt_s3_export.s3 import credentials, transfer
    from dbt_s3_export.source import batches

    get = credentials.ClientCache.get

    def client_get(self: Any, settings: Any) -> Any:
        client = get(self, settings)
        phases.watch_client(client)
        return client

    credentials.ClientCache.get = client_get  # type: ignore[method-assign]
    phases.wrap(credentials.ClientCache, "get", "client")
    phases.wrap(config.ExportConfig, "parse", "config")
    phases.wrap(_rows_module(), "export_source", "source")
    phases.wrap(batches.DuckDBSource, "schema", "schema")
    phases.wrap(store, "supports_conditional_writes", "probe")
    phases.wrap(lease.Lease, "acquire", "lease")
    phases.wrap(lease.Lease, "start_renewing", "lease")
    phases.wrap(folder.FolderCommit, "_claim_checks", "claims")
    # A folder's beginning (lease, claims, manifest read) runs beside the read.
    phases.wrap_beside(folder.FolderCommit, "begin", "begin (beside)")
    phases.wrap(single.ObjectCommit, "begin", "begin")
    for commit in (folder.FolderCommit, single.ObjectCommit):
        phases.wrap(commit, "publish", "manifest")
        phases.wrap(commit, "finish", "clean-up")
    phases.wrap(single, "claim_around", "claims")  # before the checks were sent together
    phases.wrap(single, "together", "claims")
    phases.wrap(batches.DuckDBSource, "open", "source open")
    phases.wrap(files.FileRoller, "_open", "writer start")
    phases.wrap(files.FileRoller, "write", "encode")
    phases.wrap(files.FileRoller, "close", "encode")
    phases.wrap(transfer.Uploader, "wait", "upload wait")
    phases.wrap(transfer.Uploader, "close", "clean-up")
    phases.wrap(export, "run_export", "other")


def phases_worker(spec: dict[str, Any]) -> None:
    """One process: three instrumented exports per format; prints the phases as JSON."""
    import duckdb

    phases = Phases()
    phases.owner = threading.get_ident()
    instrument(phases)
    from dbt_s3_export import RunContext, export
    from dbt_s3_export.options.config import ExportConfig
    from dbt_s3_export.s3.credentials import ClientCache, ConnectionSettings

    con = duckdb.connect(spec["db"], read_only=True)
    con.execute("SELECT count(*) FROM t").fetchall()
    cache = ClientCache()
    out = []
    for fmt in spec["formats"]:
        cold = fmt == spec["formats"][0]
        plan = [
            ("first (cold process)" if cold else "first (warm process)", f"ph-{fmt}/"),
            ("again (same export)", f"ph-{fmt}/"),
        ]
        if cold:
            plan.append(("first (warm process)", f"ph2-{fmt}/"))
        for label, prefix in plan:
            phases.reset()
            key = prefix if spec["layout"] == "partitioned" else prefix + "data." + SUFFIX[fmt]
            started, cpu0 = time.perf_counter(), time.process_time()
            phases.enter("other")
            raw = {
                "bucket": BUCKET,
                "key": key,
                "file_format": fmt,
                "endpoint_url": spec["endpoint"],
                "region": "us-east-1",
            }
            if spec["layout"] == "partitioned":
                raw["partition_cols"] = ["p"]
            cfg = ExportConfig.parse(raw)
            client = cache.get(ConnectionSettings.of(cfg))
            source = _rows_module().export_source(con, "t", "t", None, "all", file_format=fmt)
            export.run_export(cfg, source, client, RunContext(model="bench"))
            phases.leave()
            out.append(
                {
                    "format": fmt,
                    "label": label,
                    "seconds": time.perf_counter() - started,
                    "cpu": time.process_time() - cpu0,
                    "wall": phases.wall,
                    "phase_cpu": phases.cpu,
                    "requests": phases.requests,
                }
            )
    print(json.dumps(out), flush=True)


def print_phases(server: str, layout: str, runs: list[dict[str, Any]]) -> None:
    for run in runs:
        total = sum(sum(ops.values()) for ops in run["requests"].values())
        print(
            f"\n{server}, {run['format']}, 1,000 rows, {layout}: {run['label']}: "
            f"{run['seconds'] * 1000:.0f} ms wall, {run['cpu'] * 1000:.0f} ms CPU, "
            f"{total} requests"
        )
        print(f"  {'phase':15} {'wall ms':>8} {'CPU ms':>7}  requests")
        names = [n for n in PHASE_ORDER if n in run["wall"] or n in run["requests"]]
        names += [n for n in run["requests"] if n not in names]
        for name in names:
            ops = run["requests"].get(name, {})
            text = ", ".join(f"{op} {n}" for op, n in sorted(ops.items()))
            print(
                f"  {name:15} {run['wall'].get(name, 0) * 1000:8.1f} "
                f"{run['phase_cpu'].get(name, 0) * 1000:7.1f}  {text}"
            )


# --------------------------------------------------------------------------- ours vs COPY


def compare_worker(spec: dict[str, Any]) -> None:
    """Every case: a warm-up of each, then ``reps`` runs alternating ours and DuckDB's COPY."""
    import duckdb

    from dbt_s3_export import RunContext, run_export
    from dbt_s3_export.options.config import ExportConfig
    from dbt_s3_export.s3.credentials import ClientCache, ConnectionSettings

    export_source = _rows_module().export_source

    endpoint = spec["endpoint"]
    cache = ClientCache()
    results = []
    for n in spec["sizes"]:
        db = spec["dbs"][str(n)]
        ours_con = duckdb.connect(db, read_only=True)
        ours_con.execute("SELECT count(*) FROM t").fetchall()
        duck = duckdb.connect(db, read_only=True)
        bench.duckdb_s3(duck, endpoint)
        for layout in spec["layouts"]:
            for fmt in spec["formats"]:
                base = f"n{n}-{layout}-{fmt}"
                key = f"ours-{base}/" + ("" if layout == "partitioned" else "data." + SUFFIX[fmt])

                def ours() -> None:
                    raw: dict[str, Any] = {
                        "bucket": BUCKET,
                        "key": key,  # noqa: B023
                        "file_format": fmt,  # noqa: B023
                        "endpoint_url": endpoint,
                        "region": "us-east-1",
                    }
                    if layout == "partitioned":  # noqa: B023
                        raw["partition_cols"] = ["p"]
                    cfg = ExportConfig.parse(raw)
                    client = cache.get(ConnectionSettings.of(cfg))
                    source = export_source(ours_con, "t", "t", None, "all", file_format=fmt)  # noqa: B023
                    run_export(cfg, source, client, RunContext(model=f"m_{base}"))  # noqa: B023

                copies = iter(range(1_000_000))

                def copy() -> None:
                    target = f"s3://{BUCKET}/duck-{base}-{next(copies)}"  # noqa: B023
                    options = bench.DUCK_FORMAT[fmt]  # noqa: B023
                    if layout == "single":  # noqa: B023
                        duck.execute(f"COPY t TO '{target}/data.{SUFFIX[fmt]}' ({options})")  # noqa: B023
                    elif fmt == "jsonl":  # noqa: B023
                        for v in range(PARTITIONS):
                            duck.execute(  # noqa: B023
                                f"COPY (SELECT * EXCLUDE (p) FROM t WHERE p = {v}) "
                                f"TO '{target}/p={v}/data.json' ({options})"
                            )
                    else:
                        duck.execute(f"COPY t TO '{target}' ({options}, PARTITION_BY (p))")  # noqa: B023

                timings: dict[str, list[tuple[float, float]]] = {"ours": [], "duckdb": []}
                for rep in range(spec["reps"] + 1):
                    order = [("ours", ours), ("duckdb", copy)]
                    if rep % 2:
                        order.reverse()
                    for name, fn in order:
                        started, cpu = time.perf_counter(), time.process_time()
                        fn()
                        took = (time.perf_counter() - started, time.process_time() - cpu)
                        if rep:  # the first run of each is the warm-up
                            timings[name].append(took)
                results.append(
                    {
                        "rows": n,
                        "layout": layout,
                        "format": fmt,
                        **{
                            name: {
                                "seconds": statistics.median(t[0] for t in ts),
                                "cpu": statistics.median(t[1] for t in ts),
                                "all": [round(t[0], 4) for t in ts],
                            }
                            for name, ts in timings.items()
                        },
                    }
                )
                r = results[-1]
                print(
                    f"  {n:>7,} {layout:11} {fmt:7} ours {r['ours']['seconds'] * 1000:7.1f} ms "
                    f"duckdb {r['duckdb']['seconds'] * 1000:7.1f} ms "
                    f"ratio {r['ours']['seconds'] / r['duckdb']['seconds']:.2f}",
                    file=sys.stderr,
                    flush=True,
                )
        ours_con.close()
        duck.close()
    print(json.dumps(results), flush=True)


def print_comparison(server: str, results: list[dict[str, Any]], load: str) -> None:
    print(f"\n{server}: ours vs DuckDB COPY, medians ({load})")
    print(
        f"  {'rows':>7}  {'layout':11} {'format':7} {'ours ms':>8} {'COPY ms':>8} "
        f"{'ratio':>6} {'ours CPU ms':>11} {'COPY CPU ms':>11}"
    )
    for r in results:
        o, d = r["ours"], r["duckdb"]
        print(
            f"  {r['rows']:>7,}  {r['layout']:11} {r['format']:7} {o['seconds'] * 1000:8.1f} "
            f"{d['seconds'] * 1000:8.1f} {o['seconds'] / d['seconds']:6.2f} "
            f"{o['cpu'] * 1000:11.1f} {d['cpu'] * 1000:11.1f}"
        )


# --------------------------------------------------------------------------- dbt project

PROJECT_SQL = (
    "SELECT range AS id, range % 20 AS p, random() AS x, 'str_' || (range % 1000) AS s, "
    "TIMESTAMP '2024-01-01' + INTERVAL (range) SECOND AS ts FROM range({n})"
)


def write_project(root: Path, endpoint: str, models: int, rows: int, exports: bool) -> None:
    """A dbt project of ``models`` table models; with ``exports``, each exports itself."""
    repo = Path(__file__).resolve().parent.parent
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "dbt_packages").mkdir(exist_ok=True)
    link = root / "dbt_packages" / "dbt_s3_export"
    if not link.exists():
        link.symlink_to(repo, target_is_directory=True)
    (root / "packages.yml").write_text(f"packages:\n  - local: {repo}\n")
    (root / "dbt_project.yml").write_text(
        "name: bench_small\nversion: '1.0'\nconfig-version: 2\nprofile: bench_small\n"
    )
    (root / "profiles.yml").write_text(
        "bench_small:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: {root / 'bench.duckdb'}\n      threads: 4\n"
        "      plugins:\n        - module: dbt_s3_export\n          config:\n"
        f"            endpoint_url: {endpoint}\n            region: us-east-1\n"
    )
    for i in range(models):
        config = "materialized='table'"
        if exports:
            meta = (
                f"{{'bucket': '{BUCKET}', 'key': 'project/m_{i}/', 'file_format': 'parquet', "
                "'partition_cols': ['p']}"
            )
            hook = "{{ dbt_s3_export.export_to_s3() }}"
            config += f", meta={{'s3_export': {meta}}}, post_hook=\"{hook}\""
        sql = "{{ config(" + config + ") }}\n" + PROJECT_SQL.format(n=rows) + "\n"
        (root / "models" / f"m_{i}.sql").write_text(sql)


def dbt_run(root: Path) -> float:
    repo = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
        "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]),
    }
    dbt = str(Path(sys.executable).parent / "dbt")
    args = [dbt, "run", "--threads", "4", "--project-dir", str(root), "--profiles-dir", str(root)]
    started = time.perf_counter()
    proc = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"dbt run failed in {root}:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return took


def project(endpoint: str, work: Path, models: int, reps: int) -> dict[str, Any]:
    """``dbt run --threads 4`` of the project with and without exports, alternating."""
    roots = {}
    for exports in (False, True):
        root = work / ("project-exports" if exports else "project-plain")
        write_project(root, endpoint, models, 1000, exports)
        roots[exports] = root
    dbt_run(roots[True])  # parses the projects once and creates the folders' claims
    dbt_run(roots[False])
    times: dict[bool, list[float]] = {False: [], True: []}
    for rep in range(reps):
        for exports in (False, True) if rep % 2 == 0 else (True, False):
            times[exports].append(dbt_run(roots[exports]))
            print(
                f"  dbt run, {models} models, exports {exports}: {times[exports][-1]:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    plain, exported = statistics.median(times[False]), statistics.median(times[True])
    return {
        "models": models,
        "plain": plain,
        "exports": exported,
        "all": {"plain": times[False], "exports": times[True]},
    }


# --------------------------------------------------------------------------- parent


def child(mode: str, spec: dict[str, Any]) -> Any:
    proc = subprocess.run(
        [sys.executable, __file__, mode, json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min), {os.cpu_count()} cpus"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000 rows only, 3 runs each")
    ap.add_argument("--sizes", default="1000,200000")
    ap.add_argument("--layouts", default="single,partitioned")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--servers", default="seaweedfs,moto")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--phases", action="store_true", help="only the per-phase timing")
    ap.add_argument("--no-phases", action="store_true", help="skip the per-phase timing")
    ap.add_argument(
        "--project",
        type=int,
        default=100,
        help="models in the dbt project run with and without exports (0 to skip; "
        "skipped by --quick)",
    )
    ap.add_argument(
        "--project-only",
        action="store_true",
        help="only the dbt project (no per-phase timing, no comparison with COPY)",
    )
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    reps = args.reps
    models = args.project
    if args.quick:
        sizes, reps, models = [1000], 3, 0
    formats = args.formats.split(",")
    layouts = args.layouts.split(",")
    work = Path(tempfile.mkdtemp(prefix="s3-export-small-"))
    dbs = {}
    for n in sorted({*sizes, 1000}):
        dbs[str(n)] = str(work / f"data-{n}.duckdb")
        bench.make_data(Path(dbs[str(n)]), n)
    print(f"python {sys.version.split()[0]}, {load()}")
    figures: dict[str, Any] = {}
    for server_name in args.servers.split(","):
        server = bench.SERVERS[server_name]()
        try:
            got: dict[str, Any] = {"load_before": load()}
            if not (args.no_phases or args.project_only):
                for layout in layouts:
                    spec = {
                        "endpoint": server.endpoint,
                        "db": dbs["1000"],
                        "formats": formats,
                        "layout": layout,
                    }
                    runs = child("--phases-worker", spec)
                    got[f"phases_{layout}"] = runs
                    print_phases(server_name, layout, runs)
            if not (args.phases or args.project_only):
                spec = {
                    "endpoint": server.endpoint,
                    "dbs": dbs,
                    "sizes": sizes,
                    "layouts": layouts,
                    "formats": formats,
                    "reps": reps,
                }
                got["compare"] = child("--compare-worker", spec)
                got["load_after"] = load()
                print_comparison(server_name, got["compare"], got["load_after"])
            if models and not args.phases:
                got["project"] = p = project(server.endpoint, work, models, 3 if reps > 3 else 1)
                print(
                    f"\n{server_name}: dbt run --threads 4 of {models} models, medians "
                    f"({load()}): without exports {p['plain']:.1f} s, with exports "
                    f"{p['exports']:.1f} s, ratio {p['exports'] / p['plain']:.2f}"
                )
            figures[server_name] = got
        finally:
            server.stop()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--phases-worker":
        phases_worker(json.loads(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "--compare-worker":
        compare_worker(json.loads(sys.argv[2]))
    else:
        main()
