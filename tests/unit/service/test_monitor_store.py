"""The metric history in the durable store (store/sql.py `metric_samples`): written with the batch,
pruned by count and age, read back by collector and target, loaded again after a restart."""

from __future__ import annotations

from pathlib import Path

from occipy.store.base import Batch, MetricHistory, MetricSample, SamplePrune
from occipy.store.memory import MemoryStore
from occipy.store.sql import SqlStore


def _sample(collector: str, target: str, taken: float, value: float = 1.0) -> MetricSample:
    return MetricSample(collector=collector, sensor="/sensor/s", target=target, channel="cpu", metric="cpu",
                        value=value, taken=taken)


async def test_samples_are_durable_pruned_and_reloaded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'occipy.db'}"
    store = SqlStore(url)
    await store.open()
    assert isinstance(store, MetricHistory) and isinstance(MemoryStore(), MetricHistory)
    await store.commit(Batch(put_samples=[_sample("/collector/a", "/compute/1", t, t) for t in range(10)]
                             + [_sample("/collector/b", "/compute/2", 5.0)]))
    await store.commit(Batch(prune_samples=[SamplePrune("/collector/a", keep=4, before=7.0)]))
    assert [s.taken for s in await store.samples(collector="/collector/a")] == [7.0, 8.0, 9.0]
    assert [s.taken for s in await store.samples(target="/compute/2")] == [5.0]
    assert [s.taken for s in await store.samples(since=8.0)] == [8.0, 9.0]
    assert [s.taken for s in await store.samples(collector="/collector/a", limit=1)] == [9.0]
    await store.commit(Batch(prune_samples=[SamplePrune("/collector/b", keep=0)]))
    await store.close()

    again = SqlStore(url)
    await again.open()
    try:
        assert [s.value for s in await again.samples()] == [7.0, 8.0, 9.0]  # what SQL kept is what memory kept
    finally:
        await again.close()
