"""First use, as a new user meets it: the README's Quick start, word for word, and the demo.

The Quick start test reads the commands and files out of README.md and runs
them in a fresh folder: a new venv installed with the documented pip command
(from a copy of this working tree, standing in for the clone), the documented
local S3 server, the project files as written, `dbt deps` and `dbt run`, and
the read-back snippet. Its only liberty is the port: 9000 may be taken on a
shared machine, so the server gets a free one and every `127.0.0.1:9000` in
the README text follows it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .support import REPO, free_port

pytestmark = [pytest.mark.dbt, pytest.mark.slow]

FILE_LABEL = re.compile(r"^`([\w./-]+)`:")


@dataclass
class Block:
    lang: str
    text: str
    label: str | None  # the file a block is the content of (`my_project/x.yml`: before it)


def quick_start_blocks(readme: str) -> list[Block]:
    """The fenced blocks of the Quick start section, in order, with their file labels."""
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    blocks: list[Block] = []
    label: str | None = None
    lines = iter(section.splitlines())
    for line in lines:
        if line.startswith("```"):
            body = []
            for inner in lines:
                if inner.startswith("```"):
                    break
                body.append(inner)
            blocks.append(Block(line[3:].strip(), "\n".join(body) + "\n", label))
            label = None
        elif FILE_LABEL.match(line):
            label = FILE_LABEL.match(line)[1]  # type: ignore[index]
        elif line.strip():
            label = label if label and not line.startswith("**") else None
    return blocks


def clean_env(venv: Path | None = None) -> dict[str, str]:
    """This machine's environment without the test run's AWS, dbt and Python settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "DBT_", "VIRTUAL_ENV", "PYTHON"))
    }
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    if venv is not None:  # as in a terminal where the venv is activated
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    return env


def bash(script: str, cwd: Path, env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{script}\nfailed with {proc.returncode}:\n{output}"
    return output


def copy_working_tree(dest: Path) -> None:
    """What a clone holds, plus uncommitted work: tracked and untracked, not ignored, files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


@pytest.fixture
def server_stopper() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C, as the README says
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_quick_start_works_as_written(
    tmp_path: Path, server_stopper: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    readme = (REPO / "README.md").read_text().replace("127.0.0.1:9000", f"127.0.0.1:{port}")
    blocks = quick_start_blocks(readme)
    commands = [b for b in blocks if b.lang == "bash"]
    clone, install, server, run, read_back = commands
    assert clone.text.startswith("git clone ") and clone.text.rstrip().endswith(" dbt-s3-export")
    copy_working_tree(tmp_path / "dbt-s3-export")

    # 1. Install, exactly as written, into a fresh venv.
    output = bash(install.text, tmp_path, clean_env(), timeout=900)
    assert "Successfully installed" in output and "dbt-s3-export-0.1.0" in output
    # No warning from the package's build or metadata. (pip's complaints about this
    # machine's own index settings, "Location ... is ignored", are not the package's.)
    warnings = [
        line
        for line in output.splitlines()
        if re.search(r"warn|deprecat", line, re.I) and "is ignored: it is neither" not in line
    ]
    assert warnings == [], "\n".join(warnings)
    venv = tmp_path / ".venv"
    env = clean_env(venv)

    # 2. The local server, in "a second terminal".
    command = server.text.strip()
    assert command == "python -m dbt_s3_export.local_s3 --bucket my-bucket"
    proc = subprocess.Popen(
        [*command.split(), "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server_stopper.append(proc)
    assert proc.stdout is not None
    banner = [proc.stdout.readline() for _ in range(16)]
    assert "ready at http://127.0.0.1:" in banner[0], "".join(banner)
    printed = "".join(banner)
    for line in ("access_key_id: local-access-key", "secret_access_key: local-secret-key"):
        assert line in printed, printed

    # 3. The project's files, as written.
    files = {b.label: b.text for b in blocks if b.label}
    assert set(files) == {
        "my_project/dbt_project.yml",
        "my_project/packages.yml",
        "my_project/profiles.yml",
        "my_project/models/orders.sql",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    # The server prints the plugin config that the README's profiles.yml holds.
    plugins = files["my_project/profiles.yml"].split("      plugins:")[1]
    assert " ".join(("plugins:" + plugins).split()) in " ".join(printed.split())

    # 4. dbt deps and dbt run, and the lines the README says they print.
    output = bash(run.text, tmp_path, env, timeout=600)
    shown = next(b for b in blocks if b.lang == "text").text.splitlines()
    for line in shown:
        stable = re.sub(r", [0-9.]+s$", "", line)  # the seconds vary, the rest must not
        assert stable in output, f"{stable!r} not in:\n{output}"

    # 5. The read-back snippet prints the model's first rows.
    output = bash(read_back.text, tmp_path, env, timeout=120)
    assert "{'order_id': 0, 'customer': 'customer_0', 'amount': 0.0}" in output, output
    assert "{'order_id': 2, 'customer': 'customer_2', 'amount': 5.0}" in output, output


def processes_with(marker: str) -> list[str]:
    """Command lines of the processes whose environment holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


def start_demo(marker: str) -> subprocess.Popen[str]:
    env = {
        **clean_env(),
        "DEMO_TEST_MARKER": marker,
        # The demo's own venv is the one these tests run in (already installed).
        "DBT_S3_EXPORT_VENV": sys.prefix,
    }
    return subprocess.Popen(
        [str(REPO / "scripts" / "demo")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal gives it
    )


def assert_nothing_left(marker: str) -> None:
    deadline = time.monotonic() + 10
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_with(marker) == []


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_demo_succeeds_and_leaves_no_process_behind() -> None:
    marker = f"demo-{uuid.uuid4()}"
    demo = start_demo(marker)
    output, _ = demo.communicate(timeout=600)
    assert demo.returncode == 0, output
    assert "Local S3 server (SeaweedFS) ready" in output
    assert "Completed successfully" in output and "all_orders.parquet" in output
    assert "s3_export: 4 exports this run: 17 rows, 6 files, " in output
    assert_nothing_left(marker)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_demo_interrupted_leaves_no_process_behind() -> None:
    marker = f"demo-{uuid.uuid4()}"
    demo = start_demo(marker)
    assert demo.stdout is not None
    seen = []
    for line in demo.stdout:  # Ctrl-C once dbt is running against the server
        seen.append(line)
        if "Running with dbt" in line:
            break
    assert any("ready at" in line for line in seen), "".join(seen)
    assert any("weed" in p for p in processes_with(marker))
    os.killpg(demo.pid, signal.SIGINT)
    rest, _ = demo.communicate(timeout=120)
    assert demo.returncode != 0, "".join(seen) + rest
    assert_nothing_left(marker)
