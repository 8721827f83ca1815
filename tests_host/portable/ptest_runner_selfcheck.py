"""The portable runner itself: sync and async tests run, and ``raises`` behaves."""

import asyncio

from ptest import raises


def test_sync_assert_runs():
    assert 1 + 1 == 2


async def test_async_test_is_awaited():
    done = []

    async def worker():
        await asyncio.sleep_ms(1)
        done.append(1)

    await worker()
    assert done == [1]


def test_raises_checks_type_and_message():
    with raises(ValueError, match="bad") as caught:
        raise ValueError("bad field")
    assert str(caught.value) == "bad field"
    with raises(AssertionError):
        with raises(ValueError):
            pass
