"""Every answer of a run lost, one at a time, on both servers (see tests/lost_answers.py).

CI drops a sample of each run's requests (every fifth); ``scripts/lost-answer-sweep``
drops every one and prints the figures that docs/concurrency.md gives. Tables and Glue
are in test_lost_answers_tables.py, so that two test workers share the sweep.
"""

from __future__ import annotations

from typing import Any

import pytest

from .lost_answers import scenarios, sweep
from .support import S3Server

SCENARIOS = {s.name: s for s in scenarios() if not s.table and "glue" not in s.options}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_lost_answer_leaves_others_alone_and_the_export_whole(
    name: str, s3: Any, s3_server: S3Server
) -> None:
    sweep(SCENARIOS[name], s3, s3_server)
