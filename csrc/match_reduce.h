// The matching reduction (definition: mind_engine/ops/_torch_impl.py match_reduce). Maps are addressed
// by element strides so that sliced tensors need no copy; box is (B, 4) int64 [x0, y0, x1, y1).
#pragma once
#include <cstdint>

#include "common.h"

namespace mind_engine {

constexpr int64_t kScoreHalf = 10;  // score window [x-10, x+10) x [y-10, y+10) (paper, Fig. 4)

struct RowMaps {
  const void* data;
  int64_t B, C, H, W;
  int64_t sb, sc, sh, sw;
};

struct Reduced {
  int64_t* idx;
  float* peak;
  float* score;
};

void match_reduce_cpu(const RowMaps& rows, const int64_t* box, Reduced out, int threads);

#ifdef MIND_ENGINE_WITH_CUDA
void match_reduce_cuda(const RowMaps& rows, DType dtype, const int64_t* box, Reduced out, int device,
                       void* stream);
#endif

}  // namespace mind_engine
