#!/usr/bin/env bash
# Set up edgedeploy in ./.venv from the lock files: every engine, pinned.
#   scripts/setup.sh          runtime (ONNX Runtime, OpenVINO, Paddle Inference, torch CPU, rapidocr)
#   scripts/setup.sh --test   the same, plus what the tests need
# torch is the CPU build (torch==2.13.0+cpu) found through pip's configured find-links.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    *) echo "setup.sh: unknown option $arg (expected --test)" >&2; exit 2 ;;
  esac
done

# System packages: DejaVu fonts render the evaluation data; mosquitto is the real MQTT broker
# that the pipeline tests and demos start privately on loopback (never as a system service).
need_apt=()
[ -d /usr/share/fonts/truetype/dejavu ] || need_apt+=(fonts-dejavu-core)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
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
