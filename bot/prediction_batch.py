"""Predictions for concurrent tickets in one call to the classifier.

A local model's fixed cost per call (vectoriser set-up, validation, a thread hop) is several
times its cost per text: one ticket alone costs about 3 ms of CPU with TF-IDF, one of 32 about
0.5 ms. ``PredictionBatch.predict`` queues a text and waits for its prediction; texts that
arrive while the classifier is busy share its next call, so an idle bot adds no wait and a
loaded one spends its CPU on texts instead of set-up. If a shared call fails, each of its texts
is predicted again alone, so one bad text fails only its own ticket.
"""

from __future__ import annotations

import asyncio
import logging

from classifier.protocols import Classifier, Prediction

log = logging.getLogger(__name__)

#: Most texts in one call (bounds the latency of the first text in a batch).
MAX_BATCH = 64


class PredictionBatch:
    """Coalesces concurrent single-text predictions; see the module docstring."""

    def __init__(self) -> None:
        self._pending: list[tuple[Classifier, str, asyncio.Future[Prediction]]] = []
        self._task: asyncio.Task[None] | None = None

    async def predict(self, classifier: Classifier, text: str) -> Prediction:
        """``classifier``'s prediction for ``text``, computed with other waiting texts."""
        future: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        self._pending.append((classifier, text, future))
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="prediction-batch")
        return await future

    async def _drain(self) -> None:
        # Runs while texts wait, then ends (no task outlives the work; nothing to stop).
        try:
            while self._pending:
                await self._flush()
        except asyncio.CancelledError:
            for _classifier, _text, future in self._pending:
                future.cancel()
            self._pending.clear()
            raise
        finally:
            self._task = None

    async def _flush(self) -> None:
        # One call per classifier: a model swapped meanwhile answers only its own texts.
        classifier = self._pending[0][0]
        batch = [p for p in self._pending if p[0] is classifier][:MAX_BATCH]
        taken = {id(p[2]) for p in batch}
        self._pending = [p for p in self._pending if id(p[2]) not in taken]
        try:
            predictions = await classifier.predict([text for _c, text, _f in batch])
            if len(predictions) != len(batch):
                raise ValueError(f"{len(predictions)} predictions for {len(batch)} texts")
        except asyncio.CancelledError:
            for _classifier, _text, future in batch:
                future.cancel()
            raise
        except Exception:
            if len(batch) == 1:
                _settle(batch[0][2], error=_current_error())
                return
            log.debug("A shared prediction of %d texts failed; predicting each alone", len(batch))
            for _classifier, text, future in batch:
                try:
                    (prediction,) = await classifier.predict([text])
                except Exception as exc:
                    _settle(future, error=exc)
                else:
                    _settle(future, result=prediction)
            return
        for (_classifier, _text, future), prediction in zip(batch, predictions, strict=True):
            _settle(future, result=prediction)


def _settle(
    future: asyncio.Future[Prediction],
    *,
    result: Prediction | None = None,
    error: BaseException | None = None,
) -> None:
    if future.done():  # the caller was cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert result is not None
        future.set_result(result)


def _current_error() -> BaseException:
    import sys

    error = sys.exc_info()[1]
    assert error is not None
    return error
