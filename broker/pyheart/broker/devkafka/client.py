"""Client-side helpers for a development or test broker: readiness, topic creation.

aiokafka is imported inside the functions so that importing :mod:`pyheart.broker.devkafka` stays cheap.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from pyheart.broker.devkafka.runtime import DevKafkaError

_T = TypeVar("_T")
_CLIENT_ID = "pyheart-devkafka"
_TOPIC_ALREADY_EXISTS = 36


async def wait_reachable(bootstrap_servers: str, timeout_s: float = 90.0) -> dict[str, Any]:
    """Retry an admin ``describe_cluster()`` round trip until it succeeds; return its result.

    An open port is not enough: a broker's acceptors bind before it serves requests.
    Raises :class:`DevKafkaError` naming the last error class after ``timeout_s`` seconds.
    """
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last_error = "no attempt"
    while True:
        remaining = deadline - loop.time()
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap_servers,
            client_id=_CLIENT_ID,
            request_timeout_ms=int(max(1.0, min(5.0, remaining)) * 1000),
        )
        try:
            await admin.start()
            cluster: dict[str, Any] = await admin.describe_cluster()
            return cluster
        except (KafkaError, OSError, TimeoutError) as exc:
            last_error = type(exc).__name__
        finally:
            await admin.close()
        if loop.time() >= deadline:
            raise DevKafkaError(
                f"Kafka at {bootstrap_servers} did not answer describe_cluster within {timeout_s:.0f} s "
                f"(last error: {last_error})"
            )
        await asyncio.sleep(0.25)


async def create_topics(
    bootstrap_servers: str,
    names: Iterable[str],
    *,
    partitions: int = 1,
    replication_factor: int = 1,
    configs: Mapping[str, str] | None = None,
    exist_ok: bool = False,
    timeout_s: float = 30.0,
) -> None:
    """Create topics with ``partitions`` partitions each and wait until every partition has a leader."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    wanted = list(names)
    if not wanted:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id=_CLIENT_ID)
    try:
        await admin.start()
        response = await admin.create_topics(
            [
                NewTopic(
                    name=name,
                    num_partitions=partitions,
                    replication_factor=replication_factor,
                    topic_configs=dict(configs or {}),
                )
                for name in wanted
            ],
            timeout_ms=int(timeout_s * 1000),
        )
        failures = [
            f"{row['topic']}: error {row['error_code']}"
            for row in response.to_object()["topic_errors"]
            if row["error_code"] and not (exist_ok and row["error_code"] == _TOPIC_ALREADY_EXISTS)
        ]
        if failures:
            raise DevKafkaError(f"creating topics failed: {'; '.join(failures)}")
        await _wait_for_leaders(admin, wanted, partitions, timeout_s)
    finally:
        await admin.close()


async def _wait_for_leaders(admin: Any, names: list[str], partitions: int, timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        topics = await admin.describe_topics(names)
        ready = {
            t["topic"]
            for t in topics
            if t["error_code"] == 0
            and len(t["partitions"]) >= partitions
            and all(p["leader"] >= 0 for p in t["partitions"])
        }
        if ready >= set(names):
            return
        if loop.time() >= deadline:
            pending = ", ".join(sorted(set(names) - ready))
            raise DevKafkaError(f"topics without leaders after {timeout_s:.0f} s: {pending}")
        await asyncio.sleep(0.1)


def run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion from synchronous code, also when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        in_loop = False
    else:
        in_loop = True
    if not in_loop:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
