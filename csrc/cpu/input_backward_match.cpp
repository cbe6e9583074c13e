// CPU fused first-layer backward + matching reduction in fp32 (g stored in f32 or bf16), the seeds
// split over threads.
// Per seed: pass A computes the 6 row channels on the search box strip by strip (V window
// columns at a time, all in registers) and keeps each image's argmax of S; pass B recomputes S
// on each image's 20 x 20 score window around its peak. Rows are summed in the same order in
// both passes, so the peak's S is the same number in each.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "input_backward_match.h"

#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__)
#define MIND_ENGINE_CLONES __attribute__((flatten, target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MIND_ENGINE_CLONES
#endif

namespace mind_engine {
namespace {

constexpr int V = 16;     // window columns per strip
constexpr int kRows = 6;  // row channels: d/dI1 (0-2), d/dI3 (3-5)

struct Rect {
  int64_t x0, y0, x1, y1;  // half-open, in window coordinates
};

// V lanes of fp32 (GCC/Clang vector extension): the compiler splits it over the target's registers.
typedef float Vec __attribute__((vector_size(V * sizeof(float))));

// acc[o][v] = row channel O0 + o at window column x + v, for NO channels, where src(c, ky) + t
// holds g[c, i + 1 - ky, x - 1 + t] for ky in [k0, k1] (the rows of g that exist) and wt is the
// weight as [c][ky][kx][6]: rows[o, i, j] = sum g[c, i + 1 - ky, j + 1 - kx] * w[c, o, ky, kx].
template <int O0, int NO>
inline void strip(const float* src, int64_t cstride, int64_t kstride, int k0, int k1, int64_t C, const float* wt,
                  Vec (&acc)[NO]) {
  for (int o = 0; o < NO; ++o) acc[o] = Vec{};
  for (int64_t c = 0; c < C; ++c)
    for (int ky = k0; ky <= k1; ++ky) {
      const float* r = src + c * cstride + ky * kstride;
      const float* wk = wt + (c * 3 + ky) * 3 * kRows + O0;
#pragma GCC unroll 3
      for (int kx = 0; kx < 3; ++kx) {
        Vec x;
        std::memcpy(&x, r + 2 - kx, sizeof x);
#pragma GCC unroll 6
        for (int o = 0; o < NO; ++o) acc[o] += wk[kx * kRows + o] * x;
      }
    }
}

struct Seed {
  const FirstLayer& f;
  const float* g;         // this seed's (C, h, w)
  const float* wt;        // [c][ky][kx][6]
  std::vector<float>& edge;  // (C, 3, V + 2): a strip's columns of g, zero-padded, at the window's edges

  // Row channels O0 .. O0 + NO - 1 at window row i, columns x .. x + V - 1.
  template <int O0, int NO>
  void rows(int64_t i, int64_t x, Vec (&acc)[NO]) const {
    const int64_t h = f.h, w = f.w;
    const int k0 = static_cast<int>(std::max<int64_t>(0, i + 2 - h)), k1 = static_cast<int>(std::min<int64_t>(2, i + 1));
    if (x >= 1 && x + V + 1 <= w) {
      strip<O0, NO>(g + (i + 1) * w + x - 1, h * w, -w, k0, k1, f.C, wt, acc);
      return;
    }
    for (int64_t c = 0; c < f.C; ++c)
      for (int ky = k0; ky <= k1; ++ky) {
        const float* r = g + (c * h + i + 1 - ky) * w;
        float* e = edge.data() + (c * 3 + ky) * (V + 2);
        for (int64_t t = 0; t < V + 2; ++t) e[t] = x - 1 + t >= 0 && x - 1 + t < w ? r[x - 1 + t] : 0.f;
      }
    strip<O0, NO>(edge.data(), 3 * (V + 2), V + 2, k0, k1, f.C, wt, acc);
  }

  // S = max |row| over the image's 3 channels at window pixel (i, x + v), v < n.
  template <int O0>
  void sensitivity(int64_t i, int64_t x, int64_t n, float* s) const {
    Vec acc[3];
    rows<O0, 3>(i, x, acc);
    for (int64_t v = 0; v < n; ++v) s[v] = std::max({std::fabs(acc[0][v]), std::fabs(acc[1][v]), std::fabs(acc[2][v])});
  }

  // Sum of S over the score window around image k's peak (rows outside the window are 0) and S at the peak.
  template <int O0>
  void score(int64_t b, int64_t idx, int k, Reduced out) const {
    const int64_t ox = f.origin[2 * b], oy = f.origin[2 * b + 1];
    const int64_t py = idx / f.W, px = idx % f.W;
    const int64_t ya = std::max<int64_t>(py - kScoreHalf, 0), yb = std::min(py + kScoreHalf, f.H);
    const int64_t xa = std::max<int64_t>(px - kScoreHalf, 0), xb = std::min(px + kScoreHalf, f.W);
    const Rect r{std::max(xa - ox, int64_t(0)), std::max(ya - oy, int64_t(0)), std::min(xb - ox, f.w),
                 std::min(yb - oy, f.h)};
    double sum = 0.0;
    float peak = 0.f, s[V];
    for (int64_t i = r.y0; i < r.y1; ++i)
      for (int64_t x = r.x0; x < r.x1; x += V) {
        const int64_t n = std::min<int64_t>(V, r.x1 - x);
        sensitivity<O0>(i, x, n, s);
        for (int64_t v = 0; v < n; ++v) sum += s[v];
        if (i + oy == py && px - ox - x >= 0 && px - ox - x < n) peak = s[px - ox - x];
      }
    const float mean = static_cast<float>(sum / double((yb - ya) * (xb - xa)));
    out.idx[k * f.B + b] = idx;
    out.peak[k * f.B + b] = peak;
    out.score[k * f.B + b] = peak > 0.f ? peak / mean : 0.f;
  }

  // Pass A over box ∩ image ∩ window, row-major with a strict '>': the lowest flat index wins ties.
  void search(int64_t b, int64_t (&idx)[2]) const {
    const int64_t ox = f.origin[2 * b], oy = f.origin[2 * b + 1];
    const int64_t* bx = f.box + 4 * b;
    const Rect r{std::max({bx[0], int64_t(0), ox}) - ox, std::max({bx[1], int64_t(0), oy}) - oy,
                 std::min({bx[2], f.W, ox + f.w}) - ox, std::min({bx[3], f.H, oy + f.h}) - oy};
    float best[2] = {-1.f, -1.f};
    idx[0] = idx[1] = 0;
    Vec acc[kRows];
    for (int64_t i = r.y0; i < r.y1; ++i)
      for (int64_t x = r.x0; x < r.x1; x += V) {
        rows<0, kRows>(i, x, acc);
        const int64_t n = std::min<int64_t>(V, r.x1 - x), flat = (i + oy) * f.W + x + ox;
        for (int k = 0; k < 2; ++k)
          for (int64_t v = 0; v < n; ++v) {
            const float s = std::max({std::fabs(acc[3 * k][v]), std::fabs(acc[3 * k + 1][v]), std::fabs(acc[3 * k + 2][v])});
            if (s > best[k]) best[k] = s, idx[k] = flat + v;
          }
      }
  }
};

// Seed b's g as fp32: in place for f32 storage, else widened into `local` (bf16: the upper half
// of a float32), so that a 16-bit batch is never copied whole.
const float* seed_g(const FirstLayer& f, DType dtype, int64_t b, std::vector<float>& local) {
  const int64_t n = f.C * f.h * f.w;
  if (dtype == DType::f32) return static_cast<const float*>(f.g) + b * n;
  const uint16_t* src = static_cast<const uint16_t*>(f.g) + b * n;
  local.resize(n);
  for (int64_t e = 0; e < n; ++e) {
    const uint32_t u = uint32_t(src[e]) << 16;
    std::memcpy(&local[e], &u, sizeof u);
  }
  return local.data();
}

MIND_ENGINE_CLONES void match_seed(const FirstLayer& f, const float* g, int64_t b, const float* wt,
                                   std::vector<float>& edge, Reduced out) {
  const Seed seed{f, g, wt, edge};
  int64_t idx[2];
  seed.search(b, idx);
  seed.score<0>(b, idx[0], 0, out);
  seed.score<3>(b, idx[1], 1, out);
}

}  // namespace

void input_backward_match_cpu(const FirstLayer& f, DType dtype, Reduced out, int threads) {
  if (dtype != DType::f32 && dtype != DType::bf16)
    throw std::invalid_argument("input_backward_match_cpu: float32 or bfloat16 g only");
  std::vector<float> wt(f.C * 9 * kRows);  // weight[c][o][ky][kx] as [c][ky][kx][o]: 6 contiguous broadcasts
  for (int64_t c = 0; c < f.C; ++c)
    for (int o = 0; o < kRows; ++o)
      for (int k = 0; k < 9; ++k) wt[(c * 9 + k) * kRows + o] = f.weight[(c * kRows + o) * 9 + k];
  const int64_t n = thread_count(f.B * f.C * f.h * f.w, 1 << 16, threads, f.B);
  parallel_for(n, [&](int64_t t) {
    std::vector<float> edge(f.C * 3 * (V + 2)), local;
    for (int64_t b = t; b < f.B; b += n) match_seed(f, seed_g(f, dtype, b, local), b, wt.data(), edge, out);
  });
}

}  // namespace mind_engine
