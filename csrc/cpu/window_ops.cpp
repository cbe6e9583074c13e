// CPU window crops: each (window, channel) plane is a few row copies (or products) with zero
// margins, the planes split over threads in contiguous ranges. Storage f32 or bf16; a bf16
// product is formed in fp32 (exact: two 8-bit significands) and rounded once, as torch does.
#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "window_ops.h"

#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__)
#define MIND_ENGINE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MIND_ENGINE_CLONES
#endif

namespace mind_engine {
namespace {

struct F32 {
  using T = float;
  static float load(T v) { return v; }
  static T store(float f) { return f; }
};

struct BF16 {  // bfloat16 as its bits: the upper half of a float32
  using T = uint16_t;
  static float load(T v) {
    const uint32_t u = uint32_t(v) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  }
  static T store(float f) {  // round to nearest even; NaN -> the quiet NaN torch writes (0x7fc0)
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return f != f ? T(0x7fc0) : T(rounded);
  }
};

template <typename S>
MIND_ENGINE_CLONES void crop_plane(const Windows& win, const typename S::T* src, const typename S::T* g,
                                   typename S::T* out, int64_t ox, int64_t oy) {
  using T = typename S::T;
  const int64_t w = win.w;
  // Columns [xa, xb) of the window lie inside the source.
  const int64_t xa = std::clamp<int64_t>(-ox, 0, w), xb = std::clamp<int64_t>(win.Ws - ox, 0, w);
  for (int64_t i = 0; i < win.h; ++i, out += w) {
    const int64_t y = oy + i;
    const bool row_in = y >= 0 && y < win.Hs;
    const int64_t a = row_in ? xa : w, b = row_in ? xb : w;
    const T* srow = src + (row_in ? y * win.Ws : 0);  // column x of the source is srow[x]
    if (g == nullptr) {
      std::fill(out, out + a, T(0));
      if (b > a) std::memcpy(out + a, srow + ox + a, sizeof(T) * (b - a));
      std::fill(out + std::max(a, b), out + w, T(0));
    } else {
      const T* grow = g + i * w;
      for (int64_t j = 0; j < a; ++j) out[j] = S::store(S::load(grow[j]) * 0.f);  // as the reference: NaN stays NaN
      for (int64_t j = a; j < b; ++j) out[j] = S::store(S::load(grow[j]) * S::load(srow[ox + j]));
      for (int64_t j = std::max(a, b); j < w; ++j) out[j] = S::store(S::load(grow[j]) * 0.f);
    }
  }
}

template <typename S>
void crop(const Windows& win, const void* src_, const void* g_, void* out_, int threads) {
  using T = typename S::T;
  const T* src = static_cast<const T*>(src_);
  const T* g = static_cast<const T*>(g_);
  T* out = static_cast<T*>(out_);
  const int64_t planes = win.B * win.C, size = win.h * win.w;
  const int64_t n = thread_count(planes * size, 1 << 18, threads, planes);
  parallel_for(n, [&](int64_t t) {
    for (int64_t p = planes * t / n; p < planes * (t + 1) / n; ++p) {
      const int64_t b = p / win.C, c = p % win.C;
      crop_plane<S>(win, src + b * win.src_batch + c * win.Hs * win.Ws, g ? g + p * size : nullptr, out + p * size,
                    win.origin[2 * b], win.origin[2 * b + 1]);
    }
  });
}

}  // namespace

void window_crop_cpu(const Windows& win, DType dtype, const void* src, const void* g, void* out, int threads) {
  switch (dtype) {
    case DType::f32: crop<F32>(win, src, g, out, threads); break;
    case DType::bf16: crop<BF16>(win, src, g, out, threads); break;
    default: throw std::invalid_argument("window_crop_cpu: float32 or bfloat16 storage only");
  }
}

}  // namespace mind_engine
