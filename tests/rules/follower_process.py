"""A compression-rules follower as a process of its own, for the kill test: the service's own
loop (:class:`RulesLoop`: follow Orthanc's changes, decide), leaving the jobs it creates to the
test.

Configured by the environment like dicomgate (DICOMGATE_DATABASE_URL, DICOMGATE_ORTHANC_URL,
DICOMGATE_RULES_FILE, …). Run: ``python -m tests.rules.follower_process``.
"""

from __future__ import annotations

import asyncio

from dicomgate.rules.config import load_rules
from dicomgate.rules.service import RulesLoop
from dicomgate.runtime import open_runtime
from dicomgate.settings import Settings


async def leave_to_the_test(job_id: int) -> None:
    """Jobs are run by the test once every series is queued."""


async def follow() -> None:
    settings = Settings()
    rules = load_rules(settings.rules_file)
    assert rules is not None, "DICOMGATE_RULES_FILE is not set"
    async with open_runtime(settings) as runtime:
        RulesLoop(runtime, rules, leave_to_the_test).start()
        await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(follow())
