#!/usr/bin/env bash
# Set up edgedeploy in ./.venv from the lock files: every engine, pinned.
#   scripts/setup.sh          runtime (ONNX Runtime, OpenVINO, Paddle Inference, torch CPU, rapidocr)
#   scripts/setup.sh --test   the same, plus what the tests need (including --arm64 and --rknn)
#   scripts/setup.sh --arm64  also an arm64 root (qemu-aarch64) with the pinned engines' aarch64 wheels,
#                             for checking ARM artefacts (~1 min, ~150 MB, in ~/.cache/edgedeploy)
#   scripts/setup.sh --rknn   also RKNN-Toolkit2 in its own venv (~2 min, ~1.3 GB, in ~/.cache/edgedeploy)
# torch is the CPU build (torch==2.13.0+cpu) found through pip's configured find-links.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0 want_arm64=0 want_rknn=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 want_arm64=1 want_rknn=1 ;;  # the target tests need both (~10 s + ~1 min here)
    --arm64) want_arm64=1 ;;
    --rknn) want_rknn=1 ;;
    *) echo "setup.sh: unknown option $arg (expected --test, --arm64, --rknn)" >&2; exit 2 ;;
  esac
done

# System packages: DejaVu fonts render the evaluation data; mosquitto is the real MQTT broker
# that the pipeline tests and demos start privately on loopback (never as a system service).
need_apt=()
[ -d /usr/share/fonts/truetype/dejavu ] || need_apt+=(fonts-dejavu-core)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
if [ "$want_arm64" = 1 ]; then
  command -v qemu-aarch64-static >/dev/null || need_apt+=(qemu-user-static)
  command -v mmdebstrap >/dev/null || need_apt+=(mmdebstrap)
fi
# --test: headless Chromium and its driver, for the fleet dashboard's browser test (Selenium)
if [ "$want_test" = 1 ]; then command -v chromium >/dev/null || need_apt+=(chromium chromium-driver); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup.sh: please install ${need_apt[*]} (apt-get install ${need_apt[*]})" >&2; exit 1
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
install() {  # pip, without its notes about the machine's local package mirrors
  .venv/bin/python -m pip install -q --disable-pip-version-check "$@" 2> >(grep -v "Location .* is ignored" >&2 || true)
}
install -r requirements.lock
if [ "$want_test" = 1 ]; then install -r requirements-test.lock; fi
install --no-deps -e .
echo "edgedeploy installed in .venv ($(.venv/bin/edgedeploy --version))"
cache="${EDGEDEPLOY_CACHE:-$HOME/.cache/edgedeploy}"
pinned() { grep -i "^$1==" requirements.lock | cut -d= -f3; }

arm64_versions="$(printf '{"onnxruntime": "%s", "numpy": "%s", "ncnn": "%s"}' "$(pinned onnxruntime)" \
  "$(pinned numpy)" "$(pinned ncnn)")"
if [ "$want_arm64" = 1 ] && [ "$(cat "$cache/arm64-rootfs/opt/edgedeploy/versions.json" 2>/dev/null)" = "$arm64_versions" ] \
    && [ "$(grep -c ^processor "$cache/arm64-rootfs/proc/cpuinfo" 2>/dev/null)" = "$(nproc)" ]; then
  echo "arm64 root up to date in $cache/arm64-rootfs"  # same pinned wheels, same core count: ~37 s saved
  want_arm64=0
fi
if [ "$want_arm64" = 1 ]; then
  # Debian's arm64 python3 (bookworm: 3.11, as here), extracted without running its maintainer scripts
  # (no binfmt_misc needed), plus the aarch64 wheels of the versions pinned for this machine.
  root="$cache/arm64-rootfs"; tmp="$root.part"
  rm -rf "$tmp"; mkdir -p "$(dirname "$root")"
  # The host's own apt sources (the mirror this machine is configured for) serve the arm64 packages too.
  sources=/etc/apt/sources.list.d/debian.sources; [ -f "$sources" ] || sources=/etc/apt/sources.list
  mmdebstrap --quiet --variant=extract --arch=arm64 --include=python3,libpython3.11,libstdc++6,libgomp1 \
    bookworm "$tmp" "$sources"
  wheels="$(mktemp -d)"
  .venv/bin/python -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux_2_28_aarch64 --python-version 3.11 --implementation cp -d "$wheels" \
    "onnxruntime==$(pinned onnxruntime)" "numpy==$(pinned numpy)" "ncnn==$(pinned ncnn)"
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-index --only-binary=:all: \
    --platform manylinux_2_28_aarch64 --python-version 3.11 --implementation cp \
    --target "$tmp/opt/edgedeploy/site" "$wheels"/*.whl
  rm -rf "$wheels"
  # qemu-user shows the programs the host's /proc/cpuinfo; ARM's cpuinfo parser (in ORT) crashes on an
  # x86 one. Files under the root shadow the host's for the emulated program: give it an ARM one.
  mkdir -p "$tmp/proc"; : > "$tmp/proc/cpuinfo"
  for i in $(seq 0 $(($(nproc) - 1))); do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n' "$i" >> "$tmp/proc/cpuinfo"
  done
  echo "$arm64_versions" > "$tmp/opt/edgedeploy/versions.json"
  qemu-aarch64-static -L "$tmp" -E PYTHONPATH=/opt/edgedeploy/site "$tmp/usr/bin/python3" \
    -c "import onnxruntime, ncnn, platform; assert platform.machine() == 'aarch64'"
  rm -rf "$root"; mv "$tmp" "$root"
  echo "arm64 root ready in $root"
fi

if [ "$want_rknn" = 1 ]; then
  # RKNN-Toolkit2 pins numpy<=1.26, onnx<=1.18, protobuf<=4.25 and torch<=2.4: its own venv. Its import
  # needs torch only to exist (PyTorch models are not converted here), so the CPU torch this project
  # pins stands in: torch<=2.4 from PyPI would pull ~3 GB of CUDA wheels.
  venv="$cache/rknn-venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r scripts/rknn-requirements.lock \
    2> >(grep -v "Location .* is ignored" >&2 || true)
  "$venv/bin/python" -c "from rknn.api import RKNN" >/dev/null
  echo "RKNN-Toolkit2 ready in $venv"
fi
