"""Micro-batching: concurrent requests to one model are answered together.

Requests queue up; one worker thread per model takes up to `max_batch` of them (after
the first arrives it waits at most `wait_s` for more) and answers them with one
`Inspector.ask_batch` call, each request with its own question and template. The worker
is the only caller of the model, so the model runs one batch at a time. It ends after
`IDLE_EXIT_S` without requests and the next request starts a new one, so a model that
was swapped out is not kept alive by its worker.

If a batch fails, each of its requests is asked again alone: a request that breaks
the model's answer fails by itself, never the others of its batch.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

IDLE_EXIT_S = 5.0


class _Job:
    __slots__ = ("image", "question", "template", "done", "result", "error")

    def __init__(self, image, question: str, template):
        self.image, self.question, self.template = image, question, template
        self.done = threading.Event()
        self.result, self.error = None, None

    def finish(self, result=None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()


class Batcher:
    """Answers `ask` calls from many threads in batches, with one model call per batch."""

    def __init__(self, inspector, max_batch: int = 8, wait_s: float = 0.005,
                 on_batch: Callable[[int], None] | None = None):
        self.inspector = inspector
        self.max_batch = max(1, int(max_batch))
        self.wait_s = max(0.0, float(wait_s))
        self.on_batch = on_batch
        self.calls = 0
        """Model calls made (ask_batch), for tests and benchmarks."""
        self._jobs: deque[_Job] = deque()
        self._cv = threading.Condition()
        self._worker: threading.Thread | None = None

    def ask(self, image, question: str, template=None):
        """The InspectResult for one request; blocks until its batch has been answered."""
        job = _Job(image, question, template)
        with self._cv:
            self._jobs.append(job)
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="batcher", daemon=True)
                self._worker.start()
            self._cv.notify()
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    # ------------------------------------------------------------ the worker

    def _run(self) -> None:
        try:
            while (batch := self._next()) is not None:
                self._answer(batch)
        finally:
            with self._cv:
                if self._worker is threading.current_thread():  # after a crash: let ask() start another
                    self._worker = None

    def _next(self) -> list[_Job] | None:
        """The next batch, or None (and the worker is unregistered) after IDLE_EXIT_S without requests."""
        with self._cv:
            idle_until = time.monotonic() + IDLE_EXIT_S
            while not self._jobs:
                left = idle_until - time.monotonic()
                if left <= 0:
                    self._worker = None  # under the lock: a request arriving now starts a new worker
                    return None
                self._cv.wait(left)
            full_until = time.monotonic() + self.wait_s
            while len(self._jobs) < self.max_batch and (left := full_until - time.monotonic()) > 0:
                self._cv.wait(left)
            return [self._jobs.popleft() for _ in range(min(self.max_batch, len(self._jobs)))]

    def _answer(self, batch: list[_Job]) -> None:
        try:
            self.calls += 1
            if self.on_batch is not None:
                self.on_batch(len(batch))
            results = self.inspector.ask_batch([(j.image, j.template) for j in batch], [j.question for j in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0].finish(error=exc)
            else:  # find the culprit: each alone, so the others still get their answers
                for job in batch:
                    self._answer([job])
            return
        except BaseException as exc:  # never leave a request waiting forever
            for job in batch:
                job.finish(error=RuntimeError(f"the model worker stopped: {exc!r}"))
            raise
        for job, result in zip(batch, results, strict=True):
            job.finish(result)
