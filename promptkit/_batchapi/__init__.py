"""Provider batch APIs behind ``Prompt``: submit every input as one provider batch, collect later.

:meth:`Prompt.submit_batch` renders each input exactly as :meth:`Prompt.complete` would send it,
sends the requests through the backend's batch API (OpenAI's Batch API, Anthropic's Message
Batches; see ``promptkit.backends._batchapi``), split into as many provider batches as the
providers' limits need, and returns a :class:`BatchJob`: saved as JSON and resumed in another
process, polled with backoff, collected as a :class:`~promptkit.BatchResult` in input order with
per-item errors and the batch discount in every cost. A strategy that needs more calls (repair by
re-asking, chain of thought's second turn, self-refine's critique) takes one batch round per turn.

The parts: ``_items`` (one input's strategy run, round by round) and ``_job`` (the job: rounds,
splitting, polling, saving and resuming).
"""

from __future__ import annotations

from ..backends._batchapi import ANTHROPIC_LIMITS, OPENAI_LIMITS, BatchLimits, ProviderBatch
from ._job import BatchJob, JobStatus, backoff_delays, submit_batch

__all__ = [
    "ANTHROPIC_LIMITS",
    "OPENAI_LIMITS",
    "BatchJob",
    "BatchLimits",
    "JobStatus",
    "ProviderBatch",
    "backoff_delays",
    "submit_batch",
]
