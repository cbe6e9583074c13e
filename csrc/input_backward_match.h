// The first layer's backward fused with the matching reduction of both images (definition:
// mind_engine/ops/_torch_impl.py input_backward_match); the (B, 6, h, w) rows are never stored.
#pragma once
#include <cstdint>

#include "match_reduce.h"

namespace mind_engine {

struct FirstLayer {
  const void* g;          // (B, C, h, w) contiguous: gradient on each window (storage: the op's DType)
  int64_t B, C, h, w;
  const float* weight;    // (C, 6, 3, 3) contiguous fp32: the first conv's weight (padding 1)
  const int64_t* origin;  // (B, 2) (x, y): each window's top-left corner in the image
  const int64_t* box;     // (B, 4) [x0, y0, x1, y1): search boxes in the image
  int64_t H, W;           // the caller's image
};

// out.idx, out.peak and out.score are (2, B): image 1 at [0, B), image 3 at [B, 2B).
void input_backward_match_cpu(const FirstLayer& f, DType dtype, Reduced out, int threads);  // f32 or bf16 g

#ifdef MIND_ENGINE_WITH_CUDA
void input_backward_match_cuda(const FirstLayer& f, DType dtype, Reduced out, int device, void* stream);
#endif

}  // namespace mind_engine
