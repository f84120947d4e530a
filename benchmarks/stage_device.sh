#!/usr/bin/env bash
# Here (a machine with PyPI): stage what benchmarks/rehearsal.py needs on the offline GPU device.
#   bash benchmarks/stage_device.sh
# Writes three git-ignored folders, each to be carried by ONE device call (64 MiB per call):
#   .whl/   the wheels of benchmarks/device_wheels.txt (~30 MiB)
#   .inc_a/ .inc_b/  the two halves of the converted FID Inception weights (92 MB in all) + SHA-256
#   .trunk/ the baselines' Inception trunk (2 MB; carry it beside .whl)
# Then benchmarks/device_setup.sh (on the device) installs .whl into .site/ and joins the halves
# into cache/inception/ (SVDINST_CACHE=$PWD/cache). Ignored folders left by an earlier call stay on
# a warm machine, so the calls can come one after another (see benchmarks/T4_REHEARSAL.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for d in /.whl/ /.inc_a/ /.inc_b/ /.trunk/ /.site/ /cache/ /.rehearsal/; do
  grep -qxF "$d" .git/info/exclude || echo "$d" >> .git/info/exclude
done
mkdir -p .whl .inc_a .inc_b
grep -v '^#' benchmarks/device_wheels.txt | grep . > /tmp/device_wheels.req
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d .whl -r /tmp/device_wheels.req
# The converted Inception (written by svdinst.evaluation.inception on first use here).
INC=$("$PY" -c "from svdinst.evaluation.inception import inception_weights_path as p; print(p())")
NAME=$(basename "$INC")
HALF=$(( ($(stat -c %s "$INC") + 1) / 2 ))
split -b "$HALF" -d -a 1 "$INC" /tmp/inc_part.
mv /tmp/inc_part.0 ".inc_a/$NAME.part0"
mv /tmp/inc_part.1 ".inc_b/$NAME.part1"
sha256sum "$INC" | sed "s|  .*|  cache/inception/$NAME|" > .inc_b/SHA256SUMS
# The baselines' Inception trunk (2 MB; baselines_throughput.py): carry .trunk with .whl.
mkdir -p .trunk
"$PY" -m svdinst.cli inception-trunk --out ".trunk/$("$PY" -c \
  "from svdinst.models.inception_trunk import TRUNK_FILE; print(TRUNK_FILE)")"
du -sh .whl .inc_a .inc_b .trunk
