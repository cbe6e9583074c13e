// The module mind_engine._C. It never links libtorch, so the wheel does not depend on the torch
// ABI: ops take data pointers, shapes and element strides as ints (and a cudaStream_t as an int),
// and mind_engine/match_reduce.py validates the tensors and allocates the outputs.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <stdexcept>
#include <string>

#include "match_reduce.h"

namespace py = pybind11;
using mind_engine::Reduced;
using mind_engine::RowMaps;
using Quad = std::array<int64_t, 4>;

namespace {

RowMaps row_maps(uintptr_t data, const Quad& shape, const Quad& strides) {
  return {reinterpret_cast<const void*>(data), shape[0], shape[1], shape[2], shape[3],
          strides[0], strides[1], strides[2], strides[3]};
}

Reduced reduced(uintptr_t idx, uintptr_t peak, uintptr_t score) {
  return {reinterpret_cast<int64_t*>(idx), reinterpret_cast<float*>(peak), reinterpret_cast<float*>(score)};
}

#ifdef MIND_ENGINE_WITH_CUDA
mind_engine::DType dtype_of(const std::string& name) {
  if (name == "float32") return mind_engine::DType::f32;
  if (name == "float16") return mind_engine::DType::f16;
  if (name == "bfloat16") return mind_engine::DType::bf16;
  throw std::invalid_argument("match_reduce_cuda: unsupported dtype " + name);
}
#endif

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "C++/CUDA ops of mind_engine (raw-pointer bindings; use mind_engine.match_reduce)";

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
         uintptr_t score) {
        mind_engine::match_reduce_cpu(row_maps(rows, shape, strides), reinterpret_cast<const int64_t*>(box),
                                      reduced(idx, peak, score));
      },
      py::arg("rows"), py::arg("shape"), py::arg("strides"), py::arg("box"), py::arg("idx"), py::arg("peak"),
      py::arg("score"), py::call_guard<py::gil_scoped_release>(),
      "Matching reduction of fp32 CPU maps (B, C, H, W) given by element strides; box is (B, 4) int64.");

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
#endif
}
