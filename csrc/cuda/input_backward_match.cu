// CUDA fused first-layer backward + matching reduction; fp32 arithmetic whatever g's storage type.
// Pass A: one block per (tile of the window, seed) computes the 6 row channels of its pixels
// from a shared-memory tile of g, reduces each image's S = max |row| over the searched pixels to
// one 64-bit key (S's bits above, ~flat index below: the larger key is the larger S, then the
// lower index) and atomically maxes it into idx. Pass B: one block per (seed, image) decodes the
// key and sums S over the 20 x 20 score window around the peak.
#include <cub/block/block_reduce.cuh>

#include "input_backward_match.h"

namespace mind_engine {
namespace {

constexpr int kTileW = 32, kTileH = 8, kThreads = kTileW * kTileH;
constexpr int kChunk = 8;  // channels of g per shared-memory tile
constexpr int kRows = 6;
using Key = unsigned long long;

struct KeyMax {
  __device__ Key operator()(Key a, Key b) const { return a > b ? a : b; }
};

__device__ Key key_of(float s, int64_t idx) {
  return (Key(__float_as_uint(s)) << 32) | (0xffffffffull - static_cast<Key>(idx));
}

template <typename T>
__global__ void __launch_bounds__(kThreads) search_kernel(FirstLayer f, const T* g, Key* keys) {
  __shared__ float tile[kChunk][kTileH + 2][kTileW + 2];
  __shared__ float wsm[kChunk * kRows * 9];
  using Reduce = cub::BlockReduce<Key, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;

  const int64_t b = blockIdx.z, ox = f.origin[2 * b], oy = f.origin[2 * b + 1];
  const int64_t i0 = int64_t(blockIdx.y) * kTileH, j0 = int64_t(blockIdx.x) * kTileW;
  // The searched pixels, in window coordinates: box ∩ image ∩ window.
  const int64_t* bx = f.box + 4 * b;
  const int64_t xa = max(max(bx[0], int64_t(0)), ox) - ox, xb = min(min(bx[2], f.W), ox + f.w) - ox;
  const int64_t ya = max(max(bx[1], int64_t(0)), oy) - oy, yb = min(min(bx[3], f.H), oy + f.h) - oy;
  if (j0 >= xb || j0 + kTileW <= xa || i0 >= yb || i0 + kTileH <= ya) return;  // the whole block

  const int tx = threadIdx.x % kTileW, ty = threadIdx.x / kTileW;
  const T* gb = g + b * f.C * f.h * f.w;
  float acc[kRows] = {};
  for (int64_t c0 = 0; c0 < f.C; c0 += kChunk) {
    for (int e = threadIdx.x; e < kChunk * (kTileH + 2) * (kTileW + 2); e += kThreads) {
      const int cc = e / ((kTileH + 2) * (kTileW + 2)), r = e / (kTileW + 2) % (kTileH + 2), s = e % (kTileW + 2);
      const int64_t c = c0 + cc, gi = i0 - 1 + r, gj = j0 - 1 + s;  // tile[cc][r][s] = g[c, gi, gj]
      const bool in = c < f.C && gi >= 0 && gi < f.h && gj >= 0 && gj < f.w;
      tile[cc][r][s] = in ? static_cast<float>(gb[(c * f.h + gi) * f.w + gj]) : 0.f;
    }
    for (int e = threadIdx.x; e < kChunk * kRows * 9; e += kThreads)
      wsm[e] = c0 * kRows * 9 + e < f.C * kRows * 9 ? f.weight[c0 * kRows * 9 + e] : 0.f;
    __syncthreads();
    // rows[o, i, j] = sum g[c, i + 1 - ky, j + 1 - kx] * w[c, o, ky, kx]
    for (int cc = 0; cc < kChunk; ++cc)
#pragma unroll
      for (int k = 0; k < 9; ++k) {
        const float v = tile[cc][ty + 2 - k / 3][tx + 2 - k % 3];
#pragma unroll
        for (int o = 0; o < kRows; ++o) acc[o] += v * wsm[(cc * kRows + o) * 9 + k];
      }
    __syncthreads();
  }

  const int64_t i = i0 + ty, j = j0 + tx;
  const bool searched = i >= ya && i < yb && j >= xa && j < xb;
  const int64_t flat = (i + oy) * f.W + j + ox;
  for (int k = 0; k < 2; ++k) {
    const float s = fmaxf(fabsf(acc[3 * k]), fmaxf(fabsf(acc[3 * k + 1]), fabsf(acc[3 * k + 2])));
    const Key best = Reduce(tmp).Reduce(searched ? key_of(s, flat) : Key(0), KeyMax{});
    if (threadIdx.x == 0) atomicMax(keys + k * f.B + b, best);
    __syncthreads();  // tmp is reused
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) score_kernel(FirstLayer f, const T* g, Reduced out) {
  using Sum = cub::BlockReduce<float, kThreads>;
  __shared__ typename Sum::TempStorage tmp;
  const int64_t b = blockIdx.x, k = blockIdx.y, slot = k * f.B + b;
  const int64_t ox = f.origin[2 * b], oy = f.origin[2 * b + 1];
  const Key key = reinterpret_cast<const Key*>(out.idx)[slot];
  const int64_t idx = key ? static_cast<int64_t>(0xffffffffull - (key & 0xffffffffull)) : 0;
  const int64_t py = idx / f.W, px = idx % f.W;
  const T* gb = g + b * f.C * f.h * f.w;

  float sum = 0.f;
  for (int e = threadIdx.x; e < 4 * kScoreHalf * kScoreHalf; e += kThreads) {
    const int64_t y = py - kScoreHalf + e / (2 * kScoreHalf), x = px - kScoreHalf + e % (2 * kScoreHalf);
    const int64_t i = y - oy, j = x - ox;  // rows outside the window are 0
    if (y < 0 || y >= f.H || x < 0 || x >= f.W || i < 0 || i >= f.h || j < 0 || j >= f.w) continue;
    float acc[3] = {};
    for (int64_t c = 0; c < f.C; ++c)
      for (int q = 0; q < 9; ++q) {
        const int64_t gi = i + 1 - q / 3, gj = j + 1 - q % 3;
        if (gi < 0 || gi >= f.h || gj < 0 || gj >= f.w) continue;
        const float v = static_cast<float>(gb[(c * f.h + gi) * f.w + gj]);
#pragma unroll
        for (int o = 0; o < 3; ++o) acc[o] += v * f.weight[(c * kRows + 3 * k + o) * 9 + q];
      }
    sum += fmaxf(fabsf(acc[0]), fmaxf(fabsf(acc[1]), fabsf(acc[2])));
  }
  sum = Sum(tmp).Sum(sum);
  __syncthreads();  // every thread has read the key before thread 0 overwrites it
  if (threadIdx.x == 0) {
    const int64_t rows = min(py + kScoreHalf, f.H) - max(py - kScoreHalf, int64_t(0));
    const int64_t cols = min(px + kScoreHalf, f.W) - max(px - kScoreHalf, int64_t(0));
    const float peak = __uint_as_float(static_cast<unsigned>(key >> 32));
    const float mean = sum / static_cast<float>(rows * cols);
    out.idx[slot] = idx;
    out.peak[slot] = peak;
    out.score[slot] = peak > 0.f ? peak / mean : 0.f;
  }
}

template <typename T>
void launch(const FirstLayer& f, Reduced out, cudaStream_t stream) {
  const T* g = static_cast<const T*>(f.g);
  auto* keys = reinterpret_cast<Key*>(out.idx);
  check(cudaMemsetAsync(keys, 0, sizeof(Key) * 2 * f.B, stream), "cudaMemsetAsync");
  const dim3 tiles(static_cast<unsigned>((f.w + kTileW - 1) / kTileW), static_cast<unsigned>((f.h + kTileH - 1) / kTileH),
                   static_cast<unsigned>(f.B));
  search_kernel<T><<<tiles, kThreads, 0, stream>>>(f, g, keys);
  score_kernel<T><<<dim3(static_cast<unsigned>(f.B), 2), kThreads, 0, stream>>>(f, g, out);
}

}  // namespace

void input_backward_match_cuda(const FirstLayer& f, DType dtype, Reduced out, int device, void* stream) {
  launch_on_device(device, dtype, "input_backward_match_cuda launch", [&](auto storage) {
    if (f.B > 0) launch<typename decltype(storage)::type>(f, out, static_cast<cudaStream_t>(stream));
  });
}

}  // namespace mind_engine
