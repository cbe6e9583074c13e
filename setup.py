"""Packaging: setuptools drives CMake (CMakeLists.txt) to build the pybind11 module mind_engine._C.

The Triton kernels live in the top-level folder kernels/ and ship as the subpackage
mind_engine.kernels (package_dir maps it, for wheels and editable installs alike).

Environment: MIND_ENGINE_NO_CUDA=1 skips the CUDA kernels;
MIND_ENGINE_CUDA_ARCHS (e.g. "80;90") sets the architectures they are compiled for.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    """An extension whose sources CMake knows; setuptools only names it."""

    def __init__(self, name: str):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    """Configure and build with CMake, then put the module where setuptools expects it
    (the build folder for a wheel; setuptools copies it into the source tree for ``pip install -e``)."""

    def build_extension(self, ext: Extension) -> None:
        import pybind11

        build_dir = Path(self.build_temp).resolve() / "cmake"
        lib_dir = build_dir / "lib"
        build_dir.mkdir(parents=True, exist_ok=True)
        # Configure afresh: pip's isolated build env (cmake, ninja, pybind11) moves between builds.
        (build_dir / "CMakeCache.txt").unlink(missing_ok=True)
        args = [
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={lib_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DMIND_ENGINE_NO_CUDA={'ON' if os.environ.get('MIND_ENGINE_NO_CUDA') == '1' else 'OFF'}",
        ]
        if os.environ.get("MIND_ENGINE_CUDA_ARCHS"):
            args.append(f"-DMIND_ENGINE_CUDA_ARCHS={os.environ['MIND_ENGINE_CUDA_ARCHS']}")
        if shutil.which("ninja"):
            args.append("-GNinja")
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build_dir), *args], check=True)
        subprocess.run(["cmake", "--build", str(build_dir), "-j", str(os.cpu_count() or 1)], check=True)
        built = next(lib_dir.glob("_C*"))
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, target)


setup(
    packages=find_packages(include=["mind_engine", "mind_engine.*"]) + ["mind_engine.kernels"],
    package_dir={"mind_engine.kernels": "kernels"},
    package_data={"mind_engine": ["weights/*.safetensors", "weights/*.md", "weights/*.png"]},
    ext_modules=[CMakeExtension("mind_engine._C")],
    cmdclass={"build_ext": CMakeBuild},
    zip_safe=False,
)
