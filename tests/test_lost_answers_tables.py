"""Every answer of a table export or a Glue registration lost, one at a time, on both
servers (see tests/lost_answers.py and test_lost_answers.py)."""

from __future__ import annotations

from typing import Any

import pytest

from .lost_answers import scenarios, sweep
from .support import S3Server

SCENARIOS = {s.name: s for s in scenarios() if s.table or "glue" in s.options}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_lost_answer_leaves_others_alone_and_the_table_whole(
    name: str, s3: Any, s3_server: S3Server
) -> None:
    sweep(SCENARIOS[name], s3, s3_server)
