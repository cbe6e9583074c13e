// Window crops (definition: mind_engine/ops/_torch_impl.py window_gather and window_mul). Every
// tensor is contiguous; a window that leaves its source reads zeros there.
#pragma once
#include <cstdint>

#include "match_reduce.h"

namespace mind_engine {

struct Windows {
  int64_t B, C, h, w;     // the crops: (B, C, h, w)
  int64_t Hs, Ws;         // the source planes
  int64_t src_batch;      // elements between two windows' sources: C * Hs * Ws, or 0 when shared
  const int64_t* origin;  // (B, 2) int64 (x, y) of each window's top-left corner in its source
};

// out = crop of src, or g * crop of src when g is not null (window_mul); f32 or bf16 storage (a
// bf16 product is computed in fp32, where it is exact, and rounded once to nearest even).
void window_crop_cpu(const Windows& win, DType dtype, const void* src, const void* g, void* out, int threads);

#ifdef MIND_ENGINE_WITH_CUDA
void window_crop_cuda(const Windows& win, DType dtype, const void* src, const void* g, void* out, int device,
                      void* stream);
#endif

}  // namespace mind_engine
