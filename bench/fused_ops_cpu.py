"""CPU timings of the fused T3 ops against torch (the numbers in mind_engine/ops/input_backward_match.py).

Run with one thread: OMP_NUM_THREADS=1 python bench/fused_ops_cpu.py
"""
import time

import torch

from mind_engine.ops import input_backward_match, window_gather, window_mul


def best_of(fn, n=3):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(B=64, C=96, h=100, w=100, H=384, W=384):
    torch.manual_seed(0)
    g = torch.randn(B, C, h, w)
    weight = torch.randn(C, 6, 3, 3)
    origin = torch.stack([torch.randint(0, W - w, (B,)), torch.randint(0, H - h, (B,))], 1)
    box = torch.cat([origin + 10, origin + torch.tensor([w - 10, h - 10])], 1)  # the window less the score margin
    print(f"threads {torch.get_num_threads()}, g {tuple(g.shape)}, image {H} x {W}, 80 x 80 boxes")
    rows = lambda: torch.nn.functional.conv_transpose2d(g, weight, padding=1)  # noqa: E731
    print(f"conv_transpose2d alone           {best_of(rows):.3f} s")
    for impl in ("torch", "cpp"):
        t = best_of(lambda: input_backward_match(g, weight, origin, box, (H, W), impl=impl))
        print(f"input_backward_match impl={impl:5s} {t:.3f} s")
    maps = torch.randn(C, H, W)
    for impl in ("torch", "cpp"):
        print(f"window_gather shared impl={impl:5s} {best_of(lambda: window_gather(maps, origin, (h, w), impl=impl)):.3f} s")
        print(f"window_mul shared    impl={impl:5s} {best_of(lambda: window_mul(g, maps, origin, impl=impl)):.3f} s")


if __name__ == "__main__":
    main()
