"""Run a coroutine right now, up to its first real wait; a task finishes it only if it has to wait.

A frame for a local socket is written by ``WebSocketResponse.send_frame``, a
coroutine that writes at once and waits only when the socket's buffer is full.
Wrapping every frame from another node in a task would cost more than the write
(Python 3.12 has ``eager_start`` for exactly this; we run on 3.11).
"""

from __future__ import annotations

from typing import Any, Coroutine, Generator


def start(coro: Coroutine[Any, Any, Any]) -> Any:
    """Advance ``coro``: None if it finished, else the ``Resume`` to await for the rest of it.

    Exceptions raised before its first wait propagate to the caller.
    """
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    return Resume(coro, waiting)


class Resume:
    """An awaitable that hands a coroutine's pending future to the awaiting task, then drives it on."""

    __slots__ = ("coro", "waiting")

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting: Any) -> None:
        self.coro, self.waiting = coro, waiting

    def __await__(self) -> Generator[Any, Any, Any]:
        pending = self.waiting
        while True:
            try:
                sent = yield pending
            except BaseException as exc:  # noqa: BLE001 - passed into the coroutine, as a task would
                try:
                    pending = self.coro.throw(exc)
                except StopIteration as done:
                    return done.value
                continue
            try:
                pending = self.coro.send(sent)
            except StopIteration as done:
                return done.value
