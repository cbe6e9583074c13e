// CPU window crops: each (window, channel) plane is a few row copies (or products) with zero
// margins, the planes split over threads in contiguous ranges.
#include <algorithm>
#include <cstring>

#include "window_ops.h"

namespace mind_engine {
namespace {

void crop_plane(const Windows& win, const float* src, const float* g, float* out, int64_t ox, int64_t oy) {
  const int64_t w = win.w;
  // Columns [xa, xb) of the window lie inside the source.
  const int64_t xa = std::clamp<int64_t>(-ox, 0, w), xb = std::clamp<int64_t>(win.Ws - ox, 0, w);
  for (int64_t i = 0; i < win.h; ++i, out += w) {
    const int64_t y = oy + i;
    const bool row_in = y >= 0 && y < win.Hs;
    const int64_t a = row_in ? xa : w, b = row_in ? xb : w;
    const float* srow = src + (row_in ? y * win.Ws : 0);  // column x of the source is srow[x]
    if (g == nullptr) {
      std::fill(out, out + a, 0.f);
      if (b > a) std::memcpy(out + a, srow + ox + a, sizeof(float) * (b - a));
      std::fill(out + std::max(a, b), out + w, 0.f);
    } else {
      const float* grow = g + i * w;
      for (int64_t j = 0; j < a; ++j) out[j] = grow[j] * 0.f;  // as the reference: g * 0, NaN stays NaN
      for (int64_t j = a; j < b; ++j) out[j] = grow[j] * srow[ox + j];
      for (int64_t j = std::max(a, b); j < w; ++j) out[j] = grow[j] * 0.f;
    }
  }
}

}  // namespace

void window_crop_cpu(const Windows& win, const float* src, const float* g, float* out, int threads) {
  const int64_t planes = win.B * win.C, size = win.h * win.w;
  const int64_t n = thread_count(planes * size, 1 << 18, threads, planes);
  parallel_for(n, [&](int64_t t) {
    for (int64_t p = planes * t / n; p < planes * (t + 1) / n; ++p) {
      const int64_t b = p / win.C, c = p % win.C;
      crop_plane(win, src + b * win.src_batch + c * win.Hs * win.Ws, g ? g + p * size : nullptr, out + p * size,
                 win.origin[2 * b], win.origin[2 * b + 1]);
    }
  });
}

}  // namespace mind_engine
