// The module mind_engine._C. It never links libtorch, so the wheel does not depend on the torch
// ABI: ops take data pointers, shapes and element strides as ints (and a cudaStream_t as an int),
// and the dispatchers (mind_engine/ops/match_reduce.py, window_ops.py, input_backward_match.py) validate
// the tensors and allocate the outputs.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <stdexcept>
#include <string>

#include "input_backward_match.h"
#include "match_reduce.h"
#include "window_ops.h"

namespace py = pybind11;
using mind_engine::Reduced;
using mind_engine::RowMaps;
using Quad = std::array<int64_t, 4>;
using Geometry = std::array<int64_t, 7>;  // B, C, h, w, Hs, Ws, src_batch

namespace {

RowMaps row_maps(uintptr_t data, const Quad& shape, const Quad& strides) {
  return {reinterpret_cast<const void*>(data), shape[0], shape[1], shape[2], shape[3],
          strides[0], strides[1], strides[2], strides[3]};
}

mind_engine::Windows windows(const Geometry& s, uintptr_t origin) {
  return {s[0], s[1], s[2], s[3], s[4], s[5], s[6], reinterpret_cast<const int64_t*>(origin)};
}

mind_engine::FirstLayer first_layer(uintptr_t g, const Quad& shape, uintptr_t weight, uintptr_t origin, uintptr_t box,
                                    int64_t H, int64_t W) {
  return {reinterpret_cast<const void*>(g), shape[0], shape[1], shape[2], shape[3],
          reinterpret_cast<const float*>(weight), reinterpret_cast<const int64_t*>(origin),
          reinterpret_cast<const int64_t*>(box), H, W};
}

Reduced reduced(uintptr_t idx, uintptr_t peak, uintptr_t score) {
  return {reinterpret_cast<int64_t*>(idx), reinterpret_cast<float*>(peak), reinterpret_cast<float*>(score)};
}

mind_engine::DType dtype_of(const std::string& name) {
  if (name == "float32") return mind_engine::DType::f32;
  if (name == "float16") return mind_engine::DType::f16;
  if (name == "bfloat16") return mind_engine::DType::bf16;
  throw std::invalid_argument("unsupported dtype " + name);
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "C++/CUDA ops of mind_engine (raw-pointer bindings; use mind_engine.ops.match_reduce, .window_ops, "
          ".input_backward_match)";

#ifdef MIND_ENGINE_WITH_CUDA
  m.def("cuda_compiled", [] { return true; }, "True: this build holds the CUDA kernels.");
  m.def("cuda_available", [] { return mind_engine::cuda_device_count() > 0; },
        "True when the CUDA kernels are built in and a CUDA device can be used now.");
#else
  m.def("cuda_compiled", [] { return false; }, "False: this build has the CPU ops only.");
  m.def("cuda_available", [] { return false; }, "False: this build has the CPU ops only.");
#endif

  m.def(
      "match_reduce_cpu",
      [](uintptr_t rows, const Quad& shape, const Quad& strides, uintptr_t box, uintptr_t idx, uintptr_t peak,
         uintptr_t score, int threads) {
        mind_engine::match_reduce_cpu(row_maps(rows, shape, strides), reinterpret_cast<const int64_t*>(box),
                                      reduced(idx, peak, score), threads);
      },
      py::arg("rows"), py::arg("shape"), py::arg("strides"), py::arg("box"), py::arg("idx"), py::arg("peak"),
      py::arg("score"), py::arg("threads"), py::call_guard<py::gil_scoped_release>(),
      "Matching reduction of fp32 CPU maps (B, C, H, W) given by element strides on at most `threads` threads; "
      "box is (B, 4) int64.");

  m.def(
      "window_crop_cpu",
      [](const Geometry& geometry, uintptr_t origin, const std::string& dtype, uintptr_t src, uintptr_t g,
         uintptr_t out, int threads) {
        mind_engine::window_crop_cpu(windows(geometry, origin), dtype_of(dtype), reinterpret_cast<const void*>(src),
                                     reinterpret_cast<const void*>(g), reinterpret_cast<void*>(out), threads);
      },
      py::arg("geometry"), py::arg("origin"), py::arg("dtype"), py::arg("src"), py::arg("g"), py::arg("out"),
      py::arg("threads"), py::call_guard<py::gil_scoped_release>(),
      "Window crops of contiguous float32 or bfloat16 sources (times g when g is not 0); geometry is "
      "(B, C, h, w, Hs, Ws, src_batch), origin (B, 2) int64.");

  m.def(
      "input_backward_match_cpu",
      [](uintptr_t g, const std::string& dtype, const Quad& shape, uintptr_t weight, uintptr_t origin, uintptr_t box,
         int64_t H, int64_t W, uintptr_t idx, uintptr_t peak, uintptr_t score, int threads) {
        mind_engine::input_backward_match_cpu(first_layer(g, shape, weight, origin, box, H, W), dtype_of(dtype),
                                              reduced(idx, peak, score), threads);
      },
      py::arg("g"), py::arg("dtype"), py::arg("shape"), py::arg("weight"), py::arg("origin"), py::arg("box"),
      py::arg("H"), py::arg("W"), py::arg("idx"), py::arg("peak"), py::arg("score"), py::arg("threads"),
      py::call_guard<py::gil_scoped_release>(),
      "First-layer backward fused with the matching reduction, float32 or bfloat16 contiguous g (B, C, h, w) and "
      "fp32 weight (C, 6, 3, 3); outputs (2, B).");

#ifdef MIND_ENGINE_WITH_CUDA
  m.def(
      "match_reduce_cuda",
      [](uintptr_t rows, const std::string& dtype, const Quad& shape, const Quad& strides, uintptr_t box,
         uintptr_t idx, uintptr_t peak, uintptr_t score, int device, uintptr_t stream) {
        mind_engine::match_reduce_cuda(row_maps(rows, shape, strides), dtype_of(dtype),
                                       reinterpret_cast<const int64_t*>(box), reduced(idx, peak, score), device,
                                       reinterpret_cast<void*>(stream));
      },
      py::arg("rows"), py::arg("dtype"), py::arg("shape"), py::arg("strides"), py::arg("box"), py::arg("idx"),
      py::arg("peak"), py::arg("score"), py::arg("device"), py::arg("stream"), py::call_guard<py::gil_scoped_release>(),
      "Matching reduction on a CUDA device, enqueued on `stream`; dtype is float32, float16 or bfloat16.");

  m.def(
      "window_crop_cuda",
      [](const Geometry& geometry, uintptr_t origin, const std::string& dtype, uintptr_t src, uintptr_t g,
         uintptr_t out, int device, uintptr_t stream) {
        mind_engine::window_crop_cuda(windows(geometry, origin), dtype_of(dtype), reinterpret_cast<const void*>(src),
                                      reinterpret_cast<const void*>(g), reinterpret_cast<void*>(out), device,
                                      reinterpret_cast<void*>(stream));
      },
      py::arg("geometry"), py::arg("origin"), py::arg("dtype"), py::arg("src"), py::arg("g"), py::arg("out"),
      py::arg("device"), py::arg("stream"), py::call_guard<py::gil_scoped_release>(),
      "Window crops on a CUDA device, enqueued on `stream`; dtype is float32, float16 or bfloat16.");

  m.def(
      "input_backward_match_cuda",
      [](uintptr_t g, const std::string& dtype, const Quad& shape, uintptr_t weight, uintptr_t origin, uintptr_t box,
         int64_t H, int64_t W, uintptr_t idx, uintptr_t peak, uintptr_t score, int device, uintptr_t stream) {
        mind_engine::input_backward_match_cuda(first_layer(g, shape, weight, origin, box, H, W), dtype_of(dtype),
                                               reduced(idx, peak, score), device, reinterpret_cast<void*>(stream));
      },
      py::arg("g"), py::arg("dtype"), py::arg("shape"), py::arg("weight"), py::arg("origin"), py::arg("box"),
      py::arg("H"), py::arg("W"), py::arg("idx"), py::arg("peak"), py::arg("score"), py::arg("device"),
      py::arg("stream"), py::call_guard<py::gil_scoped_release>(),
      "First-layer backward fused with the matching reduction on a CUDA device (g float32, float16 or "
      "bfloat16; weight fp32), enqueued on `stream`.");
#endif
}
