"""The scoring API's greedy batcher: requests that arrive while the model runs share its next run, none waits."""

import asyncio

import pytest

from callqa.serving.batcher import GreedyBatcher


class SlowModel:
    """Doubles numbers; each run takes a while and records what it was given."""

    def __init__(self, fail_on: int | None = None):
        self.runs: list[list[int]] = []
        self.fail_on = fail_on
        self.active = self.most_active = 0  # runs under way now, and at most

    async def __call__(self, items: list[int]) -> list[int]:
        self.runs.append(items)
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        await asyncio.sleep(0.05)
        self.active -= 1
        if self.fail_on in items:
            raise RuntimeError("model failed")
        return [2 * i for i in items]


def test_a_lone_request_runs_at_once_and_requests_arriving_meanwhile_share_the_next_run():
    async def scenario():
        model = SlowModel()
        batcher = GreedyBatcher(model, max_items=64)
        first = asyncio.create_task(batcher.submit([1]))
        await asyncio.sleep(0.01)  # the first run is under way
        rest = [asyncio.create_task(batcher.submit([10 * k, 10 * k + 1])) for k in range(1, 6)]
        results = [await first] + [await t for t in rest]
        return model.runs, results

    runs, results = asyncio.run(scenario())
    assert runs == [[1], [10, 11, 20, 21, 30, 31, 40, 41, 50, 51]]
    assert results == [[2], [20, 22], [40, 42], [60, 62], [80, 82], [100, 102]]


def test_runs_hold_at_most_max_items_in_arrival_order_and_a_request_is_split_where_a_run_is_full():
    async def scenario():
        model = SlowModel()
        batcher = GreedyBatcher(model, max_items=4)
        first = asyncio.create_task(batcher.submit([0]))
        await asyncio.sleep(0.01)
        waiting = [asyncio.create_task(batcher.submit(items)) for items in ([1, 2, 3], [4, 5], [6], [7, 8, 9, 10, 11])]
        await asyncio.gather(first, *waiting)
        return model.runs, [w.result() for w in waiting]

    runs, results = asyncio.run(scenario())
    assert runs == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11]]
    assert results == [[2, 4, 6], [8, 10], [12], [14, 16, 18, 20, 22]]  # each request whole, in order


def test_a_failed_run_fails_its_requests_only_and_the_batcher_keeps_going():
    async def scenario():
        model = SlowModel(fail_on=13)
        batcher = GreedyBatcher(model, max_items=64)
        first = asyncio.create_task(batcher.submit([1]))
        await asyncio.sleep(0.01)
        bad, good = asyncio.create_task(batcher.submit([13])), asyncio.create_task(batcher.submit([2]))
        await first
        with pytest.raises(RuntimeError, match="model failed"):
            await bad
        with pytest.raises(RuntimeError):  # it shared the failed run
            await good
        return await batcher.submit([3]), batcher.running

    after, running = asyncio.run(scenario())
    assert after == [6] and running == 0


def test_with_two_runs_at_once_each_takes_its_share_and_none_waits_for_a_free_run():
    """The service runs one model run per core. A request that finds a run free starts at once; requests waiting for a
    free run are split so the runs stay even ((waiting + running) / runs each), not taken whole by the first free run."""
    async def scenario():
        model = SlowModel()
        batcher = GreedyBatcher(model, max_items=64, max_runs=2)
        first = asyncio.create_task(batcher.submit([0]))
        await asyncio.sleep(0)
        second = asyncio.create_task(batcher.submit([1]))  # the second run is free: no waiting behind the first
        await asyncio.sleep(0.01)
        assert batcher.running == 2 and len(model.runs) == 2
        waiting = [asyncio.create_task(batcher.submit([k])) for k in range(2, 12)]
        results = await asyncio.gather(first, second, *waiting)
        return model.runs, results, batcher.running

    runs, results, running = asyncio.run(scenario())
    assert runs[:2] == [[0], [1]]
    # When the first run ends, 10 wait and 1 is running: its share is ceil(11 / 2) = 6; the other run takes the rest.
    assert runs[2:] == [[2, 3, 4, 5, 6, 7], [8, 9, 10, 11]]
    assert results == [[2 * k] for k in range(12)] and running == 0


def test_a_lone_request_of_many_calls_is_split_over_the_free_runs():
    """One client posting 10 calls to a 2-core server: both cores work on them (a run each), not one."""
    async def scenario():
        model = SlowModel()
        batcher = GreedyBatcher(model, max_items=64, max_runs=2)
        return model.runs, await batcher.submit(list(range(10))), model.most_active

    runs, result, most_active = asyncio.run(scenario())
    assert runs == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]] and most_active == 2  # side by side
    assert result == [2 * k for k in range(10)]
