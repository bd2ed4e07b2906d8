"""Every new price runs the sweep, coalesced (issue 12, item 3): requests made while a sweep runs are served by
one more sweep that starts when it ends and reads the newest prices then; a failure reaches whoever waits."""

from __future__ import annotations

import asyncio

import pytest

from bot.monitor.feed import Coalescer


class Sweeps:
    """A sweep that reads the newest price when it starts and waits for the test to let it finish."""

    def __init__(self) -> None:
        self.price = 0
        self.seen: list[int] = []
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.fail: Exception | None = None

    async def run(self) -> None:
        self.seen.append(self.price)
        self.started.set()
        await self.release.wait()
        self.release.clear()
        if self.fail is not None:
            raise self.fail


def test_prices_arriving_during_a_sweep_are_taken_by_one_more_sweep_with_the_newest() -> None:
    async def main() -> None:
        sweeps = Sweeps()
        coalescer = Coalescer(sweeps.run)
        sweeps.price = 1
        first = coalescer.request()
        await sweeps.started.wait()
        for price in range(2, 12):  # ten prices while the first sweep runs
            sweeps.price = price
            coalescer.request(wait=False)
        last = coalescer.request()
        sweeps.release.set()
        assert first is not None and last is not None
        await first
        assert not last.done()  # the first sweep started before these prices: it does not answer for them
        sweeps.release.set()
        await last
        assert sweeps.seen == [1, 11] and coalescer.runs == 2 and coalescer.requests == 12
        assert not coalescer.running
        sweeps.price = 12
        again = coalescer.request()
        sweeps.release.set()
        assert again is not None
        await again
        assert sweeps.seen == [1, 11, 12]

    asyncio.run(main())


def test_a_failed_sweep_reaches_its_waiters_or_the_error_handler_and_the_next_one_runs() -> None:
    async def main() -> None:
        sweeps = Sweeps()
        errors: list[BaseException] = []
        coalescer = Coalescer(sweeps.run, on_error=errors.append)
        sweeps.fail = RuntimeError("lost the lease")
        waiting = coalescer.request()
        sweeps.release.set()
        assert waiting is not None
        with pytest.raises(RuntimeError, match="lost the lease"):
            await waiting
        assert errors == []
        coalescer.request(wait=False)
        sweeps.release.set()
        while coalescer.running:
            await asyncio.sleep(0)
        assert [str(e) for e in errors] == ["lost the lease"]
        sweeps.fail = None
        ok = coalescer.request()
        sweeps.release.set()
        assert ok is not None
        await ok
        assert coalescer.runs == 3

    asyncio.run(main())


def test_close_cancels_a_sweep_in_progress_and_its_waiters() -> None:
    async def main() -> None:
        sweeps = Sweeps()
        coalescer = Coalescer(sweeps.run)
        waiting = coalescer.request()
        await sweeps.started.wait()
        await coalescer.close()
        assert waiting is not None and waiting.cancelled() and not coalescer.running

    asyncio.run(main())
