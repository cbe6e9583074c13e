// Counts CUDA devices without ever failing: no driver, an old driver or no GPU all read as 0,
// so that mind_engine._C.cuda_available() is safe to call anywhere.
#include <cuda_runtime.h>

#include "common.h"

namespace mind_engine {

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // reset the last error so that later calls do not report it
    return 0;
  }
  return n;
}

}  // namespace mind_engine
