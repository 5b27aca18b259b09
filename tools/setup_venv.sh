#!/usr/bin/env bash
# Create (or update) the virtual environment for one TensorFlow stack and install
# bwkeras into it with Horovod built from source against that stack's TensorFlow.
#
#   tools/setup_venv.sh STACK VENV      STACK: keras3 | keras2
#
# Idempotent: a venv whose recorded stamp matches the inputs is left alone, and the
# Horovod wheel is cached under ~/.cache/bwkeras/wheels keyed by
# (horovod, TensorFlow, Python, MPI or not), so a second setup takes seconds.
set -euo pipefail

STACK=${1:?usage: setup_venv.sh keras3|keras2 VENV}
VENV=${2:?usage: setup_venv.sh keras3|keras2 VENV}
mkdir -p "$(dirname "$VENV")"; VENV=$(cd "$(dirname "$VENV")" && pwd)/$(basename "$VENV")
HOROVOD_VERSION=0.28.1
PYTHON=${PYTHON:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${BWKERAS_CACHE:-$HOME/.cache/bwkeras}

case "$STACK" in
  keras3|keras2) ;;
  *) echo "setup_venv.sh: unknown STACK '$STACK' (expected keras3 or keras2)" >&2; exit 2 ;;
esac

# The GPU build of the same TensorFlow release when an NVIDIA GPU is present.
EXTRA=$STACK
if [ "$STACK" = keras3 ] && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  EXTRA=keras3-gpu
fi
WITH_MPI=0
command -v mpicc >/dev/null 2>&1 && WITH_MPI=1

# Everything that decides what gets installed; a change re-runs the install.
STAMP_WANT=$(cat "$ROOT/setup.cfg" "$0" | sha256sum | cut -c1-16)-$EXTRA-mpi$WITH_MPI
STAMP_FILE=$VENV/.bwkeras-stamp
if [ -f "$STAMP_FILE" ] && [ "$(cat "$STAMP_FILE")" = "$STAMP_WANT" ] \
   && "$VENV/bin/python" -c "import horovod.tensorflow" >/dev/null 2>&1; then
  echo "setup: $VENV is up to date ($STACK)"
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
$PIP install --upgrade pip setuptools wheel
echo "setup: installing bwkeras[$EXTRA,test] into $VENV"
$PIP install -e "$ROOT[$EXTRA,test]"

# ---- Horovod, built against the TensorFlow just installed --------------------------
TF_VERSION=$("$VENV/bin/python" - <<'PY'
from importlib import metadata
for dist in ("tensorflow-cpu", "tensorflow"):
    try:
        print(metadata.version(dist)); break
    except metadata.PackageNotFoundError:
        pass
PY
)
PY_TAG=$("$VENV/bin/python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
KEY="horovod-$HOROVOD_VERSION-tf$TF_VERSION-$PY_TAG-mpi$WITH_MPI"
WHEEL_DIR=$CACHE/wheels/$KEY
WHEEL=$(ls "$WHEEL_DIR"/horovod-*.whl 2>/dev/null | head -n1 || true)

if [ -z "$WHEEL" ]; then
  echo "setup: building Horovod $HOROVOD_VERSION for TensorFlow $TF_VERSION ($PY_TAG, MPI=$WITH_MPI); about 2 minutes"
  BUILD=$(mktemp -d)
  trap 'rm -rf "$BUILD"' EXIT
  $PIP download --no-deps --no-binary :all: "horovod==$HOROVOD_VERSION" -d "$BUILD" 2>/dev/null
  tar -xzf "$BUILD"/horovod-$HOROVOD_VERSION.tar.gz -C "$BUILD"
  SRC=$BUILD/horovod-$HOROVOD_VERSION
  # On TF >= 2.19 xla_mpi_ops.cc no longer compiles (XLA headers are not shipped).
  # It only serves jit-compiled GPU allreduce, which bwkeras never uses.
  if "$VENV/bin/python" -c "import sys; v=tuple(map(int, '$TF_VERSION'.split('.')[:2])); sys.exit(0 if v >= (2, 19) else 1)"; then
    sed -i '/xla_mpi_ops.cc/d' "$SRC/horovod/tensorflow/CMakeLists.txt"
  fi
  command -v cmake >/dev/null 2>&1 || $PIP install cmake
  $PIP install cloudpickle psutil pyyaml packaging
  mkdir -p "$WHEEL_DIR.tmp"
  (
    cd "$SRC"
    export HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1
    export HOROVOD_WITH_GLOO=1 MAKEFLAGS=-j$(nproc)
    if [ "$WITH_MPI" = 1 ]; then export HOROVOD_WITH_MPI=1; else export HOROVOD_WITHOUT_MPI=1; fi
    "$VENV/bin/python" -m pip wheel --no-deps --no-build-isolation -w "$WHEEL_DIR.tmp" . >"$BUILD/build.log" 2>&1 \
      || { tail -n 60 "$BUILD/build.log" >&2; echo "setup: Horovod build failed (log above)" >&2; exit 1; }
  )
  # Publish the wheel only once it is complete: a failed build never leaves a cache entry.
  rm -rf "$WHEEL_DIR"
  mv "$WHEEL_DIR.tmp" "$WHEEL_DIR"
  WHEEL=$(ls "$WHEEL_DIR"/horovod-*.whl | head -n1)
fi
echo "setup: installing $(basename "$WHEEL") ($KEY)"
$PIP install --force-reinstall --no-deps "$WHEEL"
$PIP install cloudpickle psutil pyyaml packaging
TF_CPP_MIN_LOG_LEVEL=2 "$VENV/bin/python" -c "import horovod.tensorflow as hvd; hvd.init(); print('setup: horovod ok, gloo=%s mpi=%s' % (hvd.gloo_built(), hvd.mpi_built()))"
echo "$STAMP_WANT" > "$STAMP_FILE"
