"""A latest-only background worker, so live previews never block the sampler.

The sampler thread hands small CPU tensors to :meth:`LatestOnlyWorker.submit`, which never waits:
a job still pending is replaced by the newer one (frames are dropped, not queued). A daemon thread
turns jobs into results (e.g. PIL images); the sampler thread picks up the newest finished result
with :meth:`take` and sends it itself, so interrupt checks stay on the sampler thread.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("chain_of_steps")


class LatestOnlyWorker:
    def __init__(self, render: Callable[[Any], Any], name: str = "cos-preview"):
        self._render = render
        self._cond = threading.Condition()
        self._job: Any = None
        self._has_job = False
        self._result: Any = None
        self._has_result = False
        self._closed = False
        self.dropped = 0
        self.rendered = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Any) -> None:
        """Queue ``job``, replacing any job not yet started. Never blocks for long."""
        with self._cond:
            if self._has_job:
                self.dropped += 1
            self._job, self._has_job = job, True
            self._cond.notify()

    def take(self) -> Any:
        """The newest finished result not taken yet, or None."""
        with self._cond:
            if not self._has_result:
                return None
            result, self._result, self._has_result = self._result, None, False
            return result

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread; pending jobs are dropped."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    def drain(self, timeout: float = 5.0) -> None:
        """Wait until the pending job (if any) has been rendered; for tests and final frames."""
        with self._cond:
            self._cond.wait_for(lambda: not self._has_job or self._closed, timeout)
            self._cond.wait_for(lambda: not self._busy or self._closed, timeout)

    _busy = False

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._has_job or self._closed)
                if self._closed:
                    return
                job, self._job, self._has_job = self._job, None, False
                self._busy = True
                self._cond.notify_all()
            try:
                result = self._render(job)
            except Exception:  # a failed preview must never break sampling
                log.exception("[Chain-of-Steps] preview rendering failed")
                result = None
            with self._cond:
                self._busy = False
                if result is not None:
                    self._result, self._has_result = result, True
                    self.rendered += 1
                self._cond.notify_all()
