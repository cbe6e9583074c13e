"""Matching from many threads gives the sequential answer, bit for bit (issue 33).

Every job runs first alone, then all of them at once from ``THREADS`` threads released together
by a barrier; every concurrent result must equal its sequential one exactly. Covered: the
default model, one model shared by every call (each tier, one level and coarse to fine), the
other entry points on one model (Engines, rows, sub-pixel, forward-backward, 16-bit storage,
interpolation, the memory estimate), one Engine, one MindMatcher, and match_many's in-process
workers beside plain calls. Before issue 33's fix every test but the tier-0 one failed here
(other matches, or "dictionary changed size during iteration").
"""
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import mind_engine as me
from mind_engine.batch.store import ARRAYS, read_result
from mind_engine.interfaces import MindMatcher

THREADS = 6
SIDE = 64  # 64x64: "auto" goes to 2 levels (the coarsest keeps 32 px), 16 queries at stride 16
OPTS = dict(stride=16, radius=8)
SMALL = dict(encoder=(4, 4, 6, 6, 6), decoder=(6, 6, 6, 4, 4))

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(33)
    return [tuple(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8) for _ in range(2)) for _ in range(3)]


@pytest.fixture(scope="module")
def shared():
    """One random-weight model (random slopes too, so that every PReLU's sign matters)."""
    g = torch.Generator().manual_seed(3)
    model = me.MindNet(**SMALL)
    model.reset_parameters(g)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.PReLU):
                m.weight.uniform_(-0.5, 0.5, generator=g)
    return model.eval()


def _values(result):
    """A result as a flat list of numpy arrays and plain values, for an exact comparison."""
    if isinstance(result, me.Matches):
        return [getattr(result, k) for k in ARRAYS if getattr(result, k) is not None]  # (the readout has no raw ends)
    if isinstance(result, dict):
        return [v for k in sorted(result) for v in _values(result[k])]
    if isinstance(result, (tuple, list)):
        return [v for r in result for v in _values(r)]
    if isinstance(result, torch.Tensor):
        return [result.numpy()]
    return [np.asarray(result)]


def _identical(a, b) -> bool:
    va, vb = _values(a), _values(b)
    return len(va) == len(vb) and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(va, vb))


def _check_concurrent(make_jobs, repeat: int = 1) -> dict:
    """Run the jobs ``make_jobs()`` returns alone, then a second set of them ``repeat`` times from
    THREADS threads, the first wave released together: every concurrent result must be the
    sequential one. Returns the sequential results."""
    want = {name: job() for name, job in make_jobs().items()}
    jobs = make_jobs()
    runs = [name for _ in range(repeat) for name in jobs]
    start = threading.Barrier(min(THREADS, len(runs)))

    def run(i, name):
        if i < start.parties:
            start.wait(timeout=60)
        return name, jobs[name]()

    with ThreadPoolExecutor(THREADS) as pool:
        got = list(pool.map(run, range(len(runs)), runs))
    wrong = sorted({name for name, result in got if not _identical(result, want[name])})
    assert not wrong, f"{len(wrong)} of {len(jobs)} jobs gave another answer from threads than alone: {wrong}"
    return want


def test_the_default_model_from_threads(pairs):
    _check_concurrent(lambda: {
        f"pair{i} levels={lv}": (lambda a=a, b=b, lv=lv: me.match(a, b, levels=lv, **OPTS))
        for i, (a, b) in enumerate(pairs) for lv in (1, "auto")})


@pytest.mark.parametrize("tier", ["t0", "t1", "t2", "t3"])
def test_one_model_shared_by_every_call(pairs, shared, tier):
    _check_concurrent(lambda: {
        f"pair{i} levels={lv}": (lambda a=a, b=b, lv=lv: me.match(a, b, model=shared, tier=tier, levels=lv, **OPTS))
        for i, (a, b) in enumerate(pairs) for lv in (1, "auto")})


def test_every_entry_point_on_one_model_at_once(pairs, shared):
    (a, b), (c, d), (e, f) = pairs
    q = [(3, 5), (40, 21), (63, 63)]
    _check_concurrent(lambda: {
        "engine t3": lambda: me.Engine(a, b, model=shared).match(**OPTS),
        "engine t1 levels=2": lambda: me.Engine(c, d, model=shared, tier="t1").match(levels=2, **OPTS),
        "engine bf16": lambda: me.Engine(e, f, model=shared, precision="bf16").match(**OPTS),
        "coarse to fine": lambda: me.Engine(c, d, model=shared).coarse_to_fine(levels=2, **OPTS).matches,
        "rows": lambda: me.jacobian_rows(shared, c, d, q),
        "subpixel": lambda: me.match_subpixel(e, f, model=shared, both=True, **OPTS),
        "forward-backward": lambda: me.match_fb(a, b, model=shared, levels=2, **OPTS),
        "interpolate 1": lambda: me.interpolate(a, b, model=shared),
        "interpolate 2": lambda: me.interpolate(e, f, model=shared),
        "memory estimate": lambda: me.Engine(a, d, model=shared).memory_needed(),
    })


def test_one_engine_from_threads(pairs, shared):
    """Engines of two pairs per tier, each called from several threads at once (its tier is built
    by the first call, while the other pair's is built too)."""
    (a, b), (c, d) = pairs[:2]
    q = [(3, 5), (40, 21), (63, 63)]

    def jobs():
        out = {}
        for tier in ("t0", "t1", "t2", "t3"):
            one, other = me.Engine(a, b, model=shared, tier=tier), me.Engine(c, d, model=shared, tier=tier)
            out.update({f"{tier} match": lambda e=one: e.match(**OPTS),
                        f"{tier} refine": lambda e=one: e.refine(**OPTS),
                        f"{tier} other pair": lambda e=other: e.match(q, radius=4)})
        return out

    _check_concurrent(jobs)


def test_one_mind_matcher_from_threads(pairs, shared):
    matcher = MindMatcher(shared, stride=16, radius=8)
    batches = [{"image0": torch.from_numpy(np.stack(p[:1])).permute(0, 3, 1, 2) / 255.0,
                "image1": torch.from_numpy(np.stack(p[1:])).permute(0, 3, 1, 2) / 255.0} for p in pairs]
    _check_concurrent(lambda: {f"batch{i}": (lambda batch=batch: matcher(batch)) for i, batch in enumerate(batches)},
                      repeat=2)


def test_match_many_in_process_beside_plain_calls(pairs, shared, tmp_path):
    folders = itertools.count()

    def many():
        out = tmp_path / str(next(folders))  # a fresh folder each time: nothing resumed
        man = me.match_many(pairs, out, model=shared, progress=False, **OPTS)
        failed = [rec["error"] for rec in man["pairs"] if rec["status"] != "ok"]
        assert not failed, f"match_many failed pairs: {failed}"
        return [{c: read_result(out / rec["file"])[c] for c in ARRAYS} for rec in man["pairs"]]

    def jobs():
        out = {f"match_many {k}": many for k in range(3)}
        out.update({f"match pair{i}": (lambda a=a, b=b: me.match(a, b, model=shared, **OPTS))
                    for i, (a, b) in enumerate(pairs)})
        return out

    want = _check_concurrent(jobs, repeat=2)
    plain = [{c: getattr(want[f"match pair{i}"], c) for c in ARRAYS} for i in range(len(pairs))]
    assert _identical(want["match_many 0"], plain)
