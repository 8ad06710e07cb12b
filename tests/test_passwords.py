"""Tests for passwords.py: argon2id hashing off the event loop, with real hashes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import argon2
import pytest
from argon2.exceptions import VerifyMismatchError
from argon2.low_level import Type, verify_secret

from auth.passwords import PasswordHasher

FAST = {"time_cost": 1, "memory_cost": 8 * 1024, "parallelism": 1}


@pytest.fixture
def hasher() -> PasswordHasher:
    return PasswordHasher(**FAST)


async def test_hash_and_verify(hasher: PasswordHasher) -> None:
    stored = await hasher.hash("correct horse battery staple")
    assert stored.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    assert await hasher.verify(stored, "correct horse battery staple") == (True, None)


async def test_hashes_are_salted(hasher: PasswordHasher) -> None:
    assert await hasher.hash("same password") != await hasher.hash("same password")


async def test_wrong_password(hasher: PasswordHasher) -> None:
    stored = await hasher.hash("correct horse battery staple")
    assert await hasher.verify(stored, "correct horse battery stapler") == (False, None)
    assert await hasher.verify(stored, "") == (False, None)


async def test_unknown_user_never_matches(hasher: PasswordHasher) -> None:
    assert await hasher.verify(None, "anything") == (False, None)
    assert await hasher.verify(None, "") == (False, None)


async def test_unknown_user_costs_a_real_argon2_run(hasher: PasswordHasher) -> None:
    # The dummy hash must carry our parameters and parse, or an unknown username would answer faster.
    dummy = hasher._dummy_hash
    real = await hasher.hash("x")
    assert argon2.extract_parameters(dummy) == argon2.extract_parameters(real)
    with pytest.raises(VerifyMismatchError):
        verify_secret(dummy.encode(), b"x", Type.ID)


def test_default_parameters_are_the_librarys() -> None:
    # Built without hashing: the defaults cost tens of MiB and milliseconds per run.
    assert argon2.extract_parameters(PasswordHasher()._dummy_hash) == argon2.profiles.get_default_parameters()


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "not a hash",
        "$argon2id$",
        "$argon2id$v=19$m=8192,t=1,p=1$c2FsdA$aGFzaA",
        "$argon2id$v=19$m=8192,t=1,p=1$!!!!$????",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        "pbkdf2_sha256$600000$salt$hash",
    ],
)
async def test_corrupt_stored_hash_is_just_a_mismatch(hasher: PasswordHasher, stored: str) -> None:
    assert await hasher.verify(stored, "password") == (False, None)


async def test_long_passwords_are_not_truncated(hasher: PasswordHasher) -> None:
    first = "p" * 199 + "a"
    second = "p" * 199 + "b"
    stored = await hasher.hash(first)
    assert await hasher.verify(stored, first) == (True, None)
    assert await hasher.verify(stored, second) == (False, None)


async def test_unicode_and_nul_passwords(hasher: PasswordHasher) -> None:
    password = "pässwörd 🔑 \x00 after nul"
    stored = await hasher.hash(password)
    assert await hasher.verify(stored, password) == (True, None)
    assert await hasher.verify(stored, "pässwörd 🔑 ") == (False, None)


async def test_rehash_when_parameters_changed(hasher: PasswordHasher) -> None:
    old = await PasswordHasher(time_cost=2, memory_cost=8 * 1024, parallelism=1).hash("hunter2hunter2")
    ok, new = await hasher.verify(old, "hunter2hunter2")
    assert ok is True
    assert new is not None
    assert new.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    assert await hasher.verify(new, "hunter2hunter2") == (True, None)


async def test_no_rehash_on_a_wrong_password(hasher: PasswordHasher) -> None:
    old = await PasswordHasher(time_cost=2, memory_cost=8 * 1024, parallelism=1).hash("hunter2hunter2")
    assert await hasher.verify(old, "wrong") == (False, None)


async def test_rehash_from_argon2i(hasher: PasswordHasher) -> None:
    old = argon2.PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1, type=Type.I).hash("pw")
    ok, new = await hasher.verify(old, "pw")
    assert ok is True
    assert new is not None and new.startswith("$argon2id$")


class GatedExecutor(ThreadPoolExecutor):
    """Runs each job only once the event loop opens the gate, and records which threads ran jobs."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.gate = threading.Event()
        self.submitted = 0
        self.threads: list[int] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1

        def gated() -> Any:
            self.threads.append(threading.get_ident())
            # Only a coroutine on the loop opens the gate: if this job ran on the loop thread, it never would.
            if not self.gate.wait(timeout=30):
                raise AssertionError("the event loop did not run while the job was pending")
            return fn(*args, **kwargs)

        return super().submit(gated)


@pytest.fixture
def gated() -> Iterator[GatedExecutor]:
    executor = GatedExecutor()
    yield executor
    executor.gate.set()
    executor.shutdown(wait=True)


async def run_while_gated(executor: GatedExecutor, job: asyncio.Task[Any]) -> Any:
    # A yield, not a wait: the job's first step calls run_in_executor before it awaits anything, so one turn of the
    # loop hands its work to the executor; the assertion below holds that.
    await asyncio.sleep(0)
    assert executor.submitted == 1
    # The loop is free: this coroutine runs while argon2 waits in the worker.
    assert not job.done()
    executor.gate.set()
    result = await job
    assert executor.threads
    assert threading.get_ident() not in executor.threads
    return result


async def test_hash_runs_off_the_loop(gated: GatedExecutor) -> None:
    hasher = PasswordHasher(**FAST, executor=gated)
    stored = await run_while_gated(gated, asyncio.create_task(hasher.hash("pw")))
    assert stored.startswith("$argon2id$")


@pytest.mark.parametrize("known", [True, False])
async def test_verify_runs_off_the_loop(gated: GatedExecutor, known: bool) -> None:
    stored = await PasswordHasher(**FAST).hash("pw") if known else None
    hasher = PasswordHasher(**FAST, executor=gated)
    result = await run_while_gated(gated, asyncio.create_task(hasher.verify(stored, "pw")))
    assert result == ((True, None) if known else (False, None))


async def test_default_executor_is_used_when_none_given(gated: GatedExecutor) -> None:
    asyncio.get_running_loop().set_default_executor(gated)
    hasher = PasswordHasher(**FAST)
    assert await run_while_gated(gated, asyncio.create_task(hasher.verify(None, "pw"))) == (False, None)
