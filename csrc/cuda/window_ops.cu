// CUDA window crops: one thread per output element (grid-stride), fp32 arithmetic whatever the
// storage type; a product of two fp16 or bf16 values is exact in fp32, so the one rounding back
// gives the reference's result.
#include <algorithm>

#include "window_ops.h"

namespace mind_engine {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kThreads) crop_kernel(Windows win, const T* src, const T* g, T* out) {
  const int64_t n = win.B * win.C * win.h * win.w;
  for (int64_t e = blockIdx.x * int64_t(kThreads) + threadIdx.x; e < n; e += int64_t(gridDim.x) * kThreads) {
    const int64_t j = e % win.w, i = e / win.w % win.h, p = e / (win.w * win.h);
    const int64_t b = p / win.C, c = p % win.C;
    const int64_t x = win.origin[2 * b] + j, y = win.origin[2 * b + 1] + i;
    const bool inside = x >= 0 && x < win.Ws && y >= 0 && y < win.Hs;
    const float v = inside ? static_cast<float>(src[b * win.src_batch + (c * win.Hs + y) * win.Ws + x]) : 0.f;
    out[e] = static_cast<T>(g ? static_cast<float>(g[e]) * v : v);
  }
}

template <typename T>
void launch(const Windows& win, const void* src, const void* g, void* out, cudaStream_t stream) {
  const int64_t n = win.B * win.C * win.h * win.w;
  if (n == 0) return;
  const auto blocks = static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, 1 << 20));
  crop_kernel<T><<<blocks, kThreads, 0, stream>>>(win, static_cast<const T*>(src), static_cast<const T*>(g),
                                                  static_cast<T*>(out));
}

}  // namespace

void window_crop_cuda(const Windows& win, DType dtype, const void* src, const void* g, void* out, int device,
                      void* stream) {
  launch_on_device(device, dtype, "window_crop_cuda launch", [&](auto storage) {
    launch<typename decltype(storage)::type>(win, src, g, out, static_cast<cudaStream_t>(stream));
  });
}

}  // namespace mind_engine
