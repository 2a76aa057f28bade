"""``dicom-study-aggregator``: instances of a study buffered for a quiet period, then one Bundle."""

from __future__ import annotations

import asyncio
import threading
from types import ModuleType
from typing import Any

import orjson

from pyheart.broker.contracts import Format, Message
from pyheart.transformers.dicom_fhir import DicomStudyAggregator


class Clock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def instance(dx: ModuleType, n: int, study: str = "1.2.3.4") -> Message:
    """Part 10 message of instance ``n`` of ``study``."""
    return Message(
        dx.part10(dx.dataset(study=study, series=f"{study}.1", sop=f"{study}.1.{n}", InstanceNumber=n)),
        Format.DICOM,
    )


def study_of(message: Message) -> dict[str, Any]:
    """The ImagingStudy in an emitted Bundle."""
    bundle = orjson.loads(message.payload)
    (study,) = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ImagingStudy"]
    return study  # type: ignore[no-any-return]


def aggregator(clock: Clock, **config: Any) -> DicomStudyAggregator:
    """An aggregator with a 5 s quiet period on ``clock``."""
    return DicomStudyAggregator({"quiet_seconds": 5, **config}, clock=clock)


def test_nothing_is_emitted_while_instances_arrive(dx: ModuleType) -> None:
    """add() buffers; no Bundle before the study has been quiet."""
    clock = Clock()
    agg = aggregator(clock)
    out = [agg.add(instance(dx, n)) for n in range(3)]
    clock.now += 4.9
    assert (out, agg.flush_due()) == ([[], [], []], [])


def test_quiet_study_is_emitted_once_with_every_instance(dx: ModuleType) -> None:
    """After the quiet period one Bundle holds all buffered instances; then nothing is pending."""
    clock = Clock()
    agg = aggregator(clock)
    for n in range(3):
        agg.add(instance(dx, n))
    clock.now += 5
    (out,) = agg.flush_due()
    assert (study_of(out)["numberOfInstances"], agg.flush_due(), agg.pending_studies) == (3, [], 0)


def test_each_arrival_restarts_the_quiet_period(dx: ModuleType) -> None:
    """A new instance of the study postpones its emission."""
    clock = Clock()
    agg = aggregator(clock)
    agg.add(instance(dx, 1))
    clock.now += 4
    agg.add(instance(dx, 2))
    clock.now += 4
    assert agg.flush_due() == []


def test_late_instance_re_emits_the_whole_study(dx: ModuleType) -> None:
    """An instance after emission re-emits the study with earlier instances too (the PUT is a superset)."""
    clock = Clock()
    agg = aggregator(clock)
    agg.add(instance(dx, 1))
    agg.add(instance(dx, 2))
    clock.now += 5
    agg.flush_due()
    agg.add(instance(dx, 3))
    clock.now += 5
    (out,) = agg.flush_due()
    assert [i["number"] for i in study_of(out)["series"][0]["instance"]] == [1, 2, 3]


def test_study_is_forgotten_after_the_retention_time(dx: ModuleType) -> None:
    """After ``retain_seconds`` a late instance starts a fresh study."""
    clock = Clock()
    agg = aggregator(clock, retain_seconds=60)
    agg.add(instance(dx, 1))
    clock.now += 5
    agg.flush_due()
    clock.now += 61
    agg.flush_due()
    agg.add(instance(dx, 2))
    clock.now += 5
    (out,) = agg.flush_due()
    assert study_of(out)["numberOfInstances"] == 1


def test_size_cap_emits_immediately(dx: ModuleType) -> None:
    """Reaching ``max_instances`` emits the study from add() at once."""
    agg = aggregator(Clock(), max_instances=2)
    first = agg.add(instance(dx, 1))
    (out,) = agg.add(instance(dx, 2))
    assert (first, study_of(out)["numberOfInstances"]) == ([], 2)


def test_studies_are_independent(dx: ModuleType) -> None:
    """Two studies are buffered and emitted separately, each with its own instances."""
    clock = Clock()
    agg = aggregator(clock)
    agg.add(instance(dx, 1, "1.2.3.4"))
    clock.now += 3
    agg.add(instance(dx, 1, "1.2.3.5"))
    agg.add(instance(dx, 2, "1.2.3.5"))
    clock.now += 2
    (first,) = agg.flush_due()
    clock.now += 3
    (second,) = agg.flush_due()
    assert [study_of(m)["numberOfInstances"] for m in (first, second)] == [1, 2]


def test_flush_all_emits_every_pending_study(dx: ModuleType) -> None:
    """flush_all (shutdown) emits every study with buffered instances, quiet or not."""
    agg = aggregator(Clock())
    agg.add(instance(dx, 1, "1.2.3.4"))
    agg.add(instance(dx, 1, "1.2.3.5"))
    assert len(agg.flush_all()) == 2


def test_emitted_message_is_fhir_keyed_by_study(dx: ModuleType) -> None:
    """The Bundle message is FHIR JSON keyed by the ImagingStudy id (one partition per study)."""
    agg = aggregator(Clock())
    agg.add(instance(dx, 1))
    (out,) = agg.flush_all()
    assert (out.format, out.key) == (Format.FHIR_JSON, study_of(out)["id"].encode())


def test_transform_buffers_and_returns_none(dx: ModuleType) -> None:
    """The engine's transform() returns None while the study is buffering."""
    agg = aggregator(Clock())
    assert agg.transform(instance(dx, 1)) is None


def test_concurrent_adds_from_threads_lose_nothing(dx: ModuleType) -> None:
    """Adds from several threads at once: every instance is in the emitted study."""
    agg = aggregator(Clock())
    messages = [instance(dx, n) for n in range(40)]

    def worker(part: list[Message]) -> None:
        for msg in part:
            agg.add(msg)

    threads = [threading.Thread(target=worker, args=(messages[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (out,) = agg.flush_all()
    assert study_of(out)["numberOfInstances"] == 40


async def test_usable_from_coroutines(dx: ModuleType) -> None:
    """Coroutines adding concurrently and a flusher coroutine see one consistent study."""
    clock = Clock()
    agg = aggregator(clock)

    async def producer(start: int) -> None:
        for n in range(start, start + 5):
            agg.add(instance(dx, n))
            await asyncio.sleep(0)

    await asyncio.gather(producer(0), producer(5), producer(10))
    clock.now += 5
    (out,) = agg.flush_due()
    assert study_of(out)["numberOfInstances"] == 15


async def test_cleanup_forgets_buffered_studies(dx: ModuleType) -> None:
    """cleanup() drops the buffer and is idempotent."""
    agg = aggregator(Clock())
    agg.add(instance(dx, 1))
    results = [await agg.cleanup(), await agg.cleanup()]
    assert (results, agg.flush_all()) == ([True, True], [])


def test_aggregator_declares_that_it_buffers() -> None:
    """The engine and the CLI can tell the aggregator holds messages back; the converter does not."""
    from pyheart.transformers.dicom_fhir import DicomToFhir

    assert (DicomStudyAggregator.buffering, DicomToFhir.buffering) == (True, False)
