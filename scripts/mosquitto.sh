#!/usr/bin/env bash
# A private mosquitto MQTT broker on loopback, for demos (the tests start their own).
#   scripts/mosquitto.sh start [PORT]   start it (default port 18830) with its config, pid and log in out/mosquitto/
#   scripts/mosquitto.sh stop           stop the one this script started
#   scripts/mosquitto.sh status         is it running, and where
#   scripts/mosquitto.sh sub [TOPIC]    print what arrives on TOPIC (default edgedeploy/#), Ctrl-C to stop
# Never touches a system mosquitto service: its own config, pid file and log, 127.0.0.1 only.
# Needs Debian's mosquitto (apt-get install -y mosquitto mosquitto-clients).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=out/mosquitto  # out/ is git-ignored
pidfile=$dir/mosquitto.pid
cmd=${1:-status}
port=${2:-18830}

binary=$(command -v mosquitto || true)
[ -z "$binary" ] && [ -x /usr/sbin/mosquitto ] && binary=/usr/sbin/mosquitto

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case "$cmd" in
  start)
    if [ -z "$binary" ]; then
      echo "mosquitto.sh: mosquitto is not installed; run: apt-get install -y mosquitto" >&2; exit 1
    fi
    if running; then echo "mosquitto already running (pid $(cat "$pidfile"), $(cat "$dir/port"))"; exit 0; fi
    mkdir -p "$dir"
    cat > "$dir/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
log_dest file $PWD/$dir/mosquitto.log
CONF
    "$binary" -c "$dir/mosquitto.conf" >/dev/null 2>&1 &
    echo $! > "$pidfile"
    echo "127.0.0.1:$port" > "$dir/port"
    for _ in $(seq 50); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { echo "mosquitto running on 127.0.0.1:$port (pid $(cat "$pidfile"))"; exit 0; }
      running || break
      sleep 0.1
    done
    echo "mosquitto.sh: broker did not start; see $dir/mosquitto.log (is port $port free?)" >&2
    rm -f "$pidfile"; exit 1 ;;
  stop)
    if running; then kill "$(cat "$pidfile")"; echo "mosquitto stopped"; else echo "mosquitto not running"; fi
    rm -f "$pidfile" ;;
  status)
    if running; then echo "mosquitto running on $(cat "$dir/port") (pid $(cat "$pidfile"))"; else echo "mosquitto not running"; exit 3; fi ;;
  sub)
    topic=${2:-edgedeploy/#}
    hostport=$(cat "$dir/port" 2>/dev/null || echo 127.0.0.1:18830)
    exec mosquitto_sub -h "${hostport%:*}" -p "${hostport#*:}" -q 1 -v -t "$topic" ;;
  *)
    echo "mosquitto.sh: unknown command $cmd (start [PORT] | stop | status | sub [TOPIC])" >&2; exit 2 ;;
esac
