// CPU matching reduction on fp32 maps: a plain scan per batch row, the rows split over threads.
// NaN entries of the maps count as 0 (std::max(s, NaN) keeps s), as in the torch reference.
#include <algorithm>
#include <cmath>

#include "match_reduce.h"

namespace mind_engine {
namespace {

// S(y, x) = max_c |map[c, y, x]|.
float sensitivity(const float* map, const RowMaps& r, int64_t y, int64_t x) {
  float s = 0.f;
  for (int64_t c = 0; c < r.C; ++c) s = std::max(s, std::fabs(map[c * r.sc + y * r.sh + x * r.sw]));
  return s;
}

void reduce_row(const RowMaps& r, int64_t b, const int64_t* box, Reduced out) {
  const float* map = static_cast<const float*>(r.data) + b * r.sb;
  const int64_t* bx = box + 4 * b;
  const int64_t x0 = std::max<int64_t>(bx[0], 0), y0 = std::max<int64_t>(bx[1], 0);
  const int64_t x1 = std::min(bx[2], r.W), y1 = std::min(bx[3], r.H);
  // Row-major scan with a strict '>' keeps the lowest flat index on ties; an empty box gives 0.
  float best = -1.f;
  int64_t idx = 0;
  for (int64_t y = y0; y < y1; ++y)
    for (int64_t x = x0; x < x1; ++x) {
      const float s = sensitivity(map, r, y, x);
      if (s > best) best = s, idx = y * r.W + x;
    }
  const int64_t py = idx / r.W, px = idx % r.W;
  const int64_t wy0 = std::max<int64_t>(py - kScoreHalf, 0), wy1 = std::min(py + kScoreHalf, r.H);
  const int64_t wx0 = std::max<int64_t>(px - kScoreHalf, 0), wx1 = std::min(px + kScoreHalf, r.W);
  double sum = 0.0;
  for (int64_t y = wy0; y < wy1; ++y)
    for (int64_t x = wx0; x < wx1; ++x) sum += sensitivity(map, r, y, x);
  const float peak = sensitivity(map, r, py, px);
  const float mean = static_cast<float>(sum / double((wy1 - wy0) * (wx1 - wx0)));
  out.idx[b] = idx;
  out.peak[b] = peak;
  out.score[b] = peak > 0.f ? peak / mean : 0.f;
}

}  // namespace

void match_reduce_cpu(const RowMaps& r, const int64_t* box, Reduced out, int threads) {
  const int64_t n = thread_count(r.B * r.C * r.H * r.W, 1 << 16, threads, r.B);
  parallel_for(n, [&](int64_t t) {
    for (int64_t b = t; b < r.B; b += n) reduce_row(r, b, box, out);
  });
}

}  // namespace mind_engine
