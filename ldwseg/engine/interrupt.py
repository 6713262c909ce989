"""Graceful stops: SIGINT (Ctrl-C) and SIGTERM ask the training loop to stop at the next step.

:class:`~ldwseg.engine.stopping.StepWatch` checks :attr:`StopRequests.signal` after every
optimizer step; when it is set, it saves a checkpoint and raises
:class:`~ldwseg.errors.Interrupted`. A second
Ctrl-C stops at once (``KeyboardInterrupt``), for a loop that does not come back.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

__all__ = ["StopRequests", "SIGNAL_EXIT_CODES"]

log = logging.getLogger(__name__)

SIGNAL_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
"""The exit status shells report for a process stopped by each signal (128 + number)."""


class StopRequests:
    """Context manager: while active, SIGINT and SIGTERM set :attr:`signal` instead of killing.

    Outside the main thread (where Python cannot install handlers) it does nothing, and
    the previous handlers are put back on exit.
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, number: int, frame: FrameType | None) -> None:
        name = signal.Signals(number).name
        if self.signal is not None and name == "SIGINT":
            raise KeyboardInterrupt
        self.signal = name
        log.warning("%s received: stopping after this step and saving a checkpoint (Ctrl-C again to quit now)", name)

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
