"""Render warehouse export plans with the real adapter installed, without connecting.

Run as ``python warehouse_render.py <project dir> <valid case>,... <error case>...``:
one dbt process renders every valid case in one run-operation, then each error case
in a run-operation of its own (dbt stops at the first compile error), and prints
one JSON object: {"plans": {...}, "errors": {case: message}}.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from dbt.adapters.base.connections import BaseConnectionManager
from dbt.cli.main import dbtRunner


def _never_connect(cls: Any, *args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("rendering export plans must not open a connection")


# run-operation clears the transaction first (BEGIN + COMMIT on most adapters),
# which would connect; nothing else does. Any connection attempt fails loudly.
BaseConnectionManager.clear_transaction = lambda self: None  # type: ignore[method-assign]
BaseConnectionManager.rollback_if_open = lambda self: None  # type: ignore[method-assign]
BaseConnectionManager.retry_connection = classmethod(_never_connect)  # type: ignore[assignment]


def main() -> None:
    project, valid, *errors = sys.argv[1:]
    messages: list[str] = []
    failures: list[str] = []

    def collect(event: Any) -> None:
        msg = str(getattr(event.info, "msg", "") or "")
        if msg.startswith("S3PLANS "):
            messages.append(msg[len("S3PLANS ") :])
        elif "export_to_s3: " in msg:
            failures.append(msg[msg.index("export_to_s3: ") :].strip())

    runner = dbtRunner(callbacks=[collect])
    base = ["--project-dir", project, "--profiles-dir", project, "--quiet"]
    out: dict[str, Any] = {"plans": {}, "errors": {}}
    names = [n for n in valid.split(",") if n]
    if names:
        args = json.dumps({"names": names})
        result = runner.invoke(["run-operation", "render_cases", "--args", args, *base])
        if not result.success:
            raise SystemExit(f"rendering failed: {failures or result.exception}")
        out["plans"] = json.loads(messages[-1])
    for name in errors:
        failures.clear()
        args = json.dumps({"names": [name]})
        result = runner.invoke(["run-operation", "render_cases", "--args", args, *base])
        out["errors"][name] = None if result.success else (failures or [str(result.exception)])[0]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
