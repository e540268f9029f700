"""Erasures (right to erasure) running in this process, each possibly outliving its request.

An erasure of a learner with many sessions can take longer than a request may
(10 000 sessions are 3 Query pages and 400 batch calls; moto, locally, takes 17 s and more).
The route waits for it as long as its deadline allows; an erasure not finished
by then goes on in the background, and its route answers that it is under way.
Whether it has finished is a fact of the table (no item of the learner is left),
so any task can tell, and an erasure whose task stopped midway is resumed by
asking for it again: every step of it is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from service.domain.stats import StatsService

log = logging.getLogger(__name__)


class Erasures:
    def __init__(self, stats: StatsService) -> None:
        self._stats = stats
        self._running: dict[str, asyncio.Task[None]] = {}

    async def erase(self, user_id: str, within: float) -> bool:
        """Erase a learner, or join their erasure under way; whether it finished within ``within`` seconds.

        Raises what the erasure raised if it failed in that time."""
        task = self._running.get(user_id)
        if task is None:
            task = asyncio.create_task(self._stats.erase(user_id))
            self._running[user_id] = task
            task.add_done_callback(lambda done: self._finished(user_id, done))
        # asyncio.wait, unlike wait_for, leaves the erasure running when the wait ends or is cancelled.
        done, _ = await asyncio.wait({task}, timeout=within)
        if not done:
            return False
        task.result()
        return True

    def _finished(self, user_id: str, task: asyncio.Task[None]) -> None:
        if self._running.get(user_id) is task:
            del self._running[user_id]
        if not task.cancelled() and task.exception() is not None:
            # Its request may have answered already: asking again resumes it.
            log.warning("erasure stopped before it finished", extra={"error": repr(task.exception())})

    async def aclose(self) -> None:
        """Stop the erasures under way (shutdown): each is resumed when asked for again."""
        for task in list(self._running.values()):
            task.cancel()
            # Its failure, if it failed first, was logged when it ended.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
