"""The model deployments' watchdog: a wedged model thread fails `check`; slow-but-moving work does not."""

from __future__ import annotations

import asyncio
import threading

import pytest

from serve_app.watchdog import CallWatchdog, StalledError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_call_wedged_past_its_deadline_with_nothing_finishing_fails_the_check() -> None:
    clock = Clock()
    dog = CallWatchdog(grace_s=5, clock=clock)
    release = threading.Event()
    wedged = asyncio.create_task(asyncio.to_thread(dog.run, "translate", 20.0, release.wait))
    while dog.in_flight() == 0:
        await asyncio.sleep(0.01)
    clock.now += 24
    dog.check()  # within deadline + grace: still healthy
    clock.now += 2
    with pytest.raises(StalledError, match="translate"):
        dog.check()
    release.set()
    await wedged
    dog.check()  # the model came back: healthy again
    assert dog.finished == 1 and dog.in_flight() == 0


async def test_a_cancelled_await_still_counts_until_the_model_thread_returns() -> None:
    """The Pipeline's deadline cancels the replica's awaiting task; the thread is what matters."""
    clock = Clock()
    dog = CallWatchdog(grace_s=0, clock=clock)
    release = threading.Event()
    task = asyncio.create_task(asyncio.to_thread(dog.run, "synthesize", 1.0, release.wait))
    while dog.in_flight() == 0:
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    clock.now += 2
    with pytest.raises(StalledError):
        dog.check()
    release.set()
    while dog.in_flight():
        await asyncio.sleep(0.01)
    dog.check()


def test_one_slow_call_among_finishing_ones_is_not_a_stall() -> None:
    clock = Clock()
    dog = CallWatchdog(grace_s=0, clock=clock)
    started = threading.Event()
    release = threading.Event()

    def slow() -> None:
        started.set()
        release.wait()

    thread = threading.Thread(target=dog.run, args=("convert", 1.0, slow))
    thread.start()
    started.wait()
    clock.now += 5
    dog.run("convert", 1.0, lambda: None)  # another call finished just now: the model is moving
    dog.check()
    release.set()
    thread.join()


def test_errors_count_as_finished_calls() -> None:
    clock = Clock()
    dog = CallWatchdog(grace_s=0, clock=clock)

    def boom() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        dog.run("transcribe", 1.0, boom)
    clock.now += 100
    dog.check()
    assert dog.in_flight() == 0 and dog.finished == 1


async def test_a_model_deployments_health_check_fails_while_its_model_thread_is_wedged() -> None:
    """The wiring in a real deployment class (no Ray): its calls run under the watchdog with their stage
    deadline, and its check_health consults it."""
    from deployments.synthesis.deployment import SynthesizerDeployment
    from serve_app.deadlines import StageDeadlines
    from serve_app.settings import TtsSettings

    release = threading.Event()

    class WedgedService:
        def synthesize(self, text: str, language: str) -> str:
            release.wait()
            return "clip"

    cls = SynthesizerDeployment.func_or_class
    replica = cls.__new__(cls)
    replica.service = WedgedService()
    replica.deadlines = StageDeadlines(TtsSettings(synthesize_timeout_s=0.1, synthesize_timeout_per_char_s=0))
    replica.watchdog = CallWatchdog(grace_s=0.1)
    call = asyncio.create_task(replica.synthesize("hello", "en"))
    await asyncio.sleep(0.5)
    with pytest.raises(StalledError, match="synthesize"):
        replica.check_health()
    release.set()
    assert await call == "clip"
    replica.check_health()


def test_on_idle_runs_only_when_the_last_call_finishes():
    """The heap trim must never run while another model call is still using the allocator."""
    seen: list[int] = []
    dog = CallWatchdog(grace_s=5, on_idle=lambda: seen.append(dog.in_flight()))

    def outer() -> None:
        dog.run("inner", 1.0, lambda: None)  # finishes while `outer` is still in flight: no trim yet
        assert seen == []

    dog.run("outer", 1.0, outer)
    assert seen == [0]


def test_release_free_heap_trims_on_glibc():
    import platform

    from serve_app.heap import release_free_heap

    assert release_free_heap() is (platform.libc_ver()[0] == "glibc")
