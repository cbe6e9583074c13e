"""The in-process backend: one worker, with the next pair decoded in a thread while this one is
matched (torch and the image decoders release the GIL, so the two overlap)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

import torch

from .pairs import Pair
from .work import Loaded, Matcher


def run_local(pending: Iterable[Pair], sink, spec, settings, device=None, threads: int | None = None) -> None:
    """Match every pending pair in this process, reporting each outcome to ``sink``; torch's
    thread count is set to ``threads`` for the job and restored after it."""
    before = torch.get_num_threads()
    try:
        _run(pending, sink, Matcher(spec, settings, device, threads, name="local"))
    finally:
        torch.set_num_threads(before)


def _run(pending, sink, matcher: Matcher) -> None:
    it = iter(pending)

    def next_loaded():  # advancing ``it`` decodes video frames and checks resume: in the thread too
        p = next(it, None)
        return None if p is None else Loaded(p)

    with ThreadPoolExecutor(1, thread_name_prefix="mind-decode") as pool:
        fut = pool.submit(next_loaded)
        while (loaded := fut.result()) is not None:
            fut = pool.submit(next_loaded)
            sink.done(matcher.match(loaded))
