// CUDA matching reduction: one block per batch row. The block scans the search box for the
// argmax of S = max_c |rows| (lowest flat index on ties), then sums S over the 20 x 20 score
// window; all arithmetic is fp32 whatever the storage type (fp32, fp16 or bf16).
#include <cub/block/block_reduce.cuh>

#include "match_reduce.h"

namespace mind_engine {
namespace {

constexpr int kThreads = 256;

struct Best {
  float value;
  int64_t idx;
};

// The larger value wins; on equal values the lower flat index does.
struct BetterOf {
  __device__ Best operator()(const Best& a, const Best& b) const {
    return (b.value > a.value || (b.value == a.value && b.idx < a.idx)) ? b : a;
  }
};

template <typename T>
__device__ float sensitivity(const T* map, const RowMaps& r, int64_t y, int64_t x) {
  float s = 0.f;
  for (int64_t c = 0; c < r.C; ++c) s = fmaxf(s, fabsf(static_cast<float>(map[c * r.sc + y * r.sh + x * r.sw])));
  return s;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) match_reduce_kernel(RowMaps r, const int64_t* box, Reduced out) {
  using ArgMax = cub::BlockReduce<Best, kThreads>;
  using Sum = cub::BlockReduce<float, kThreads>;
  __shared__ union {
    typename ArgMax::TempStorage argmax;
    typename Sum::TempStorage sum;
  } tmp;
  __shared__ int64_t peak_idx;

  const int64_t b = blockIdx.x;
  const T* map = static_cast<const T*>(r.data) + b * r.sb;
  const int64_t x0 = max(box[4 * b], int64_t(0)), y0 = max(box[4 * b + 1], int64_t(0));
  const int64_t x1 = min(box[4 * b + 2], r.W), y1 = min(box[4 * b + 3], r.H);
  const int64_t bw = max(x1 - x0, int64_t(0)), n = bw * max(y1 - y0, int64_t(0));

  // Each thread's indices rise, so a strict '>' keeps its lowest; -1 loses to any S >= 0 and
  // leaves index 0 for an empty box, as the reference does.
  Best best{-1.f, 0};
  for (int64_t i = threadIdx.x; i < n; i += kThreads) {
    const int64_t y = y0 + i / bw, x = x0 + i % bw;
    const float s = sensitivity(map, r, y, x);
    if (s > best.value) best = {s, y * r.W + x};
  }
  best = ArgMax(tmp.argmax).Reduce(best, BetterOf{});
  if (threadIdx.x == 0) peak_idx = best.idx;
  __syncthreads();

  const int64_t py = peak_idx / r.W, px = peak_idx % r.W;
  float sum = 0.f;
  for (int k = threadIdx.x; k < 4 * kScoreHalf * kScoreHalf; k += kThreads) {
    const int64_t y = py - kScoreHalf + k / (2 * kScoreHalf), x = px - kScoreHalf + k % (2 * kScoreHalf);
    if (y >= 0 && y < r.H && x >= 0 && x < r.W) sum += sensitivity(map, r, y, x);
  }
  sum = Sum(tmp.sum).Sum(sum);
  if (threadIdx.x == 0) {
    const int64_t rows = min(py + kScoreHalf, r.H) - max(py - kScoreHalf, int64_t(0));
    const int64_t cols = min(px + kScoreHalf, r.W) - max(px - kScoreHalf, int64_t(0));
    const float peak = sensitivity(map, r, py, px);
    const float mean = sum / static_cast<float>(rows * cols);
    out.idx[b] = peak_idx;
    out.peak[b] = peak;
    out.score[b] = peak > 0.f ? peak / mean : 0.f;
  }
}

}  // namespace

void match_reduce_cuda(const RowMaps& r, DType dtype, const int64_t* box, Reduced out, int device,
                       void* stream) {
  launch_on_device(device, dtype, "match_reduce_cuda launch", [&](auto storage) {
    using T = typename decltype(storage)::type;
    const auto s = static_cast<cudaStream_t>(stream);
    match_reduce_kernel<T><<<static_cast<unsigned>(r.B), kThreads, 0, s>>>(r, box, out);
  });
}

}  // namespace mind_engine
