// What every op of mind_engine._C shares: the thread pool of the CPU loops, the storage types of
// the CUDA kernels, and (in CUDA sources) the error check and the dtype switch that runs a launch
// on the caller's device.
#pragma once
#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace mind_engine {

// The threads a CPU op runs on: one for a small job (`work` elements under `min_work`: starting
// threads would cost more than they save), else `threads` (torch.get_num_threads() from the
// front-end), at most one per task.
inline int64_t thread_count(int64_t work, int64_t min_work, int threads, int64_t tasks) {
  return work < min_work ? 1 : std::clamp<int64_t>(threads, 1, std::max<int64_t>(tasks, 1));
}

// run(t) for t in [0, n): t = 0 on the calling thread, the others on threads of their own.
template <typename Run>
void parallel_for(int64_t n, Run&& run) {
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < n; ++t) pool.emplace_back(run, t);
  run(int64_t(0));
  for (auto& th : pool) th.join();
}

// The storage types the kernels read (arithmetic is fp32): all three on CUDA; the CPU window crops
// take f32 and bf16, the other CPU ops f32.
enum class DType { f32, f16, bf16 };

#ifdef MIND_ENGINE_WITH_CUDA
int cuda_device_count();  // 0 without a driver or a GPU; never fails
#endif

}  // namespace mind_engine

#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace mind_engine {

inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

template <typename T>
struct Storage {
  using type = T;
};

// Make `device` current (this module has its own static CUDA runtime, whose current device is not
// torch's), call launch(Storage<T>{}) with T the storage type `dtype` names, then check that the
// launch was accepted; `what` names the op in the error.
template <typename Launch>
void launch_on_device(int device, DType dtype, const char* what, Launch&& launch) {
  check(cudaSetDevice(device), "cudaSetDevice");
  switch (dtype) {
    case DType::f32: launch(Storage<float>{}); break;
    case DType::f16: launch(Storage<__half>{}); break;
    case DType::bf16: launch(Storage<__nv_bfloat16>{}); break;
  }
  check(cudaGetLastError(), what);
}

}  // namespace mind_engine
#endif
