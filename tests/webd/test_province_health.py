"""The province's /healthz needs no login, so a stranger can ask it in a loop: one database ping
answers every check for two seconds, and checks that arrive during a ping share it."""

from __future__ import annotations

import asyncio
import threading

from webd.province import SharedPing


def test_concurrent_checks_share_one_ping_and_a_fresh_answer_is_reused():
    now = [0.0]
    started, release = threading.Event(), threading.Event()
    calls = []

    def ping() -> int:
        calls.append(1)
        started.set()
        assert release.wait(10), "the test never let the ping finish"
        return 7

    shared = SharedPing(ping, fresh_s=2.0, clock=lambda: now[0])

    async def main() -> list[tuple[bool, object]]:
        tasks = [asyncio.create_task(shared.answer()) for _ in range(50)]
        assert await asyncio.to_thread(started.wait, 10)
        release.set()
        return await asyncio.gather(*tasks)

    answers = asyncio.run(main())
    assert answers == [(True, 7)] * 50 and len(calls) == 1 == shared.pings
    now[0] = 1.9
    assert asyncio.run(shared.answer()) == (True, 7) and shared.pings == 1  # still fresh: no new ping
    now[0] = 2.1
    assert asyncio.run(shared.answer()) == (True, 7) and shared.pings == 2  # a new event loop is fine too


def test_a_failing_database_is_remembered_as_briefly_as_a_healthy_one():
    now = [0.0]
    state = {"up": False}

    def ping() -> int:
        if not state["up"]:
            raise ConnectionRefusedError("database gone")
        return 3

    shared = SharedPing(ping, fresh_s=2.0, clock=lambda: now[0])

    async def burst() -> list[tuple[bool, object]]:
        return await asyncio.gather(*(shared.answer() for _ in range(20)))

    assert asyncio.run(burst()) == [(False, "ConnectionRefusedError")] * 20 and shared.pings == 1
    state["up"] = True
    assert asyncio.run(shared.answer()) == (False, "ConnectionRefusedError")  # within two seconds
    now[0] = 2.5
    assert asyncio.run(shared.answer()) == (True, 3) and shared.pings == 2
