// CUDA window crops: one thread per output element (grid-stride), fp32 arithmetic whatever the
// storage type; a product of two fp16 or bf16 values is exact in fp32, so the one rounding back
// gives the reference's result.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

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

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
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
  // This module has its own (static) CUDA runtime, whose current device is not torch's.
  check(cudaSetDevice(device), "cudaSetDevice");
  const auto s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::f32: launch<float>(win, src, g, out, s); break;
    case DType::f16: launch<__half>(win, src, g, out, s); break;
    case DType::bf16: launch<__nv_bfloat16>(win, src, g, out, s); break;
  }
  check(cudaGetLastError(), "window_crop_cuda launch");
}

}  // namespace mind_engine
