"""Every answer of a table export or a Glue registration lost, one at a time, on both
servers (see tests/lost_answers.py).

CI drops a sample of each run's requests (every fifth); ``scripts/lost-answer-sweep``
drops every one and prints the figures that docs/concurrency.md gives.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import pytest

from .lost_answers import Scenario, chosen, count_requests, scenarios, sweep_one
from .support import MotoServer, S3Server

# Iceberg and Delta tables and Glue registration (folders in test_lost_answers.py).
SCENARIOS = {s.name: s for s in scenarios() if s.table or "glue" in s.options}
_buckets = itertools.count()


def _bucket(s3_server: S3Server) -> str:
    return f"lost-{os.getpid()}-{next(_buckets)}"


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_lost_answer_leaves_others_alone_and_the_table_whole(
    name: str, s3: Any, s3_server: S3Server
) -> None:
    scenario: Scenario = SCENARIOS[name]
    if "glue" in scenario.options and not isinstance(s3_server, MotoServer):
        pytest.skip("Glue is moto's: SeaweedFS has no Glue")
    count = count_requests(scenario, s3, s3_server.endpoint, _bucket(s3_server))
    assert count > 3, count
    server = type(s3_server).__name__
    out = os.environ.get("DBT_S3_EXPORT_SWEEP_OUT")
    swept = 0
    for index in range(count):
        if not chosen(index, count, name):
            continue
        outcome = sweep_one(scenario, s3, s3_server.endpoint, _bucket(s3_server), index, server)
        swept += 1
        if out:
            with open(out, "a") as f:
                f.write(outcome.line() + "\n")
    assert swept >= count // 5
