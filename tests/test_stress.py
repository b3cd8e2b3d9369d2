"""Random overlapping runs of one export, some killed, some failing; the invariant throughout.

Three workers start runs of the same export (random mode and partitions) one after
another for STRESS_SECONDS. Each run is either an ordinary one, one whose process
is killed at a random moment, or one whose uploads the server keeps refusing. A
watcher checks the invariant all along and every worker checks it after each
step; at the end one last run must leave exactly one export and nothing else.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any
from urllib.parse import unquote

from .concurrency import InvariantWatcher, check_invariant, check_settled
from .engine import read_rows
from .faultproxy import GATE, STATUS, FaultProxy, Rule
from .stress_child import LEASE_TTL
from .support import DUMMY_CREDENTIALS, REPO, S3Server, list_keys, read_object

STRESS_SECONDS = float(os.environ.get("DBT_S3_EXPORT_STRESS_SECONDS", "40"))
PREFIX = "stress/"
MODES = ("replace", "append", "overwrite_partitions")


def child(endpoint: str, bucket: str, tag: str, mode: str, parts: str, pause: float) -> Any:
    env = {**os.environ, **DUMMY_CREDENTIALS, "PYTHONPATH": str(REPO)}
    args = [endpoint, bucket, PREFIX, tag, mode, parts, str(pause)]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.stress_child", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_random_overlapping_runs_kills_and_failures(
    s3: Any, bucket: str, s3_server: S3Server
) -> None:
    rng = random.Random(int(os.environ.get("DBT_S3_EXPORT_STRESS_SEED", time.time())))
    outcomes: Counter[str] = Counter()
    problems: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + STRESS_SECONDS

    def one_run(worker: int, n: int) -> None:
        tag = f"w{worker}n{n}"
        mode = rng.choice(MODES)
        parts = ",".join(str(p) for p in sorted(rng.sample(range(4), rng.randint(1, 4))))
        kind = rng.choices(["ok", "killed", "failing"], weights=[5, 2, 1])[0]
        if kind == "failing":
            proxy = FaultProxy(s3_server.endpoint).start()
            proxy.add(Rule(STATUS, "PUT", r"/part-", times=None, status=500, code="InternalError"))
            endpoint = proxy.endpoint
        else:
            proxy, endpoint = None, s3_server.endpoint
        proc = child(endpoint, bucket, tag, mode, parts, pause=rng.uniform(0.05, 0.3))
        try:
            if kind == "killed":
                time.sleep(rng.uniform(0.5, 3.0))
                proc.kill()
            _, err = proc.communicate(timeout=180)
        finally:
            if proxy is not None:
                proxy.stop()
        with lock:
            outcomes[f"{kind}:{'exit 0' if proc.returncode == 0 else 'failed'}"] += 1
            if kind == "ok" and proc.returncode != 0:
                problems.append(f"{tag} ({mode}) failed: {err.decode()[-2000:]}")

    def worker(i: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            one_run(i, n)
            n += 1
            try:
                check_invariant(s3, bucket, PREFIX)
            except AssertionError as e:
                with lock:
                    problems.append(f"after a run of worker {i}: {e}")

    with InvariantWatcher(s3, bucket, PREFIX):
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not problems, problems[:3]
    assert outcomes, "no run happened"

    # A last, ordinary run after the storm: it clears every leftover of the dead runs.
    time.sleep(LEASE_TTL + 1)
    last = child(s3_server.endpoint, bucket, "last", "replace", "0,1,2,3", pause=0)
    _, err = last.communicate(timeout=180)
    assert last.returncode == 0, err.decode()[-2000:]
    final = check_settled(s3, bucket, PREFIX)
    rows = read_rows(s3, bucket, [f["key"] for f in final["files"]])
    assert len(rows) == final["rows"] == 40
    assert {v.split("-")[0] for _, v in rows} == {"last"}
    print(f"stress outcomes: {dict(outcomes)}")


def test_an_upload_landing_after_the_takeover_is_deleted_by_the_run_after(
    s3: Any, bucket: str, s3_server: S3Server
) -> None:
    """The whole story, with a real process: a run is stopped with one file on the way,
    another takes its lease over, commits and sweeps; the file lands after that, and
    the stopped run is killed. The run after deletes the file."""
    proxy = FaultProxy(s3_server.endpoint).start()
    try:
        proxy.add(Rule(GATE, method="PUT", path=r"/part-", query=r"^$", times=1))
        stopped = child(proxy.endpoint, bucket, "stopped", "replace", "0,1,2,3", 0.5)
        try:
            assert proxy.held.wait(60), stopped.stderr.read() if stopped.poll() else "no PUT"
            late = unquote(next(s for s in proxy.seen if s.action == GATE).path.split("/", 2)[2])
            os.kill(stopped.pid, signal.SIGSTOP)  # renews no more: its lease expires
            taker = child(s3_server.endpoint, bucket, "taker", "replace", "0,1", 0.0)
            assert taker.wait(120) == 0, taker.stderr.read()
            assert late not in list_keys(s3, bucket, PREFIX)
            proxy.gate.set()  # the stopped run's upload lands now, after the sweep
            deadline = time.monotonic() + 30
            while late not in list_keys(s3, bucket, PREFIX) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert late in list_keys(s3, bucket, PREFIX)
        finally:
            stopped.kill()
            stopped.wait(30)
    finally:
        proxy.stop()
    swept = json.loads(read_object(s3, bucket, PREFIX + "_lease.json"))["garbage"]["swept"]
    assert len(swept) == 1, swept
    after = child(s3_server.endpoint, bucket, "after", "replace", "2", 0.0)
    assert after.wait(120) == 0, after.stderr.read()
    assert late not in list_keys(s3, bucket, PREFIX)
    check_settled(s3, bucket, PREFIX)
