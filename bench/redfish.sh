#!/usr/bin/env bash
# Redfish benchmark: fencegate against fence_redfish, measured in the same run.
#
#   1. one host, off + verified, against sushy-emulator (fake driver, SUSHY_FAKE_DELAY=0):
#      `fencegate fence --device redfish://…?pin=…` vs `fence_redfish -o off`
#      (hyperfine, median of RUNS; a prepare step powers the system back on before each run);
#      the same two against fencegate's own simulator (one Redfish service);
#   2. SCALE simulated Redfish systems (fencegate-bmcsim --redfish SCALE) fenced and verified
#      in one `fencegate fence` call (inventory generated here, storm_limit = 0,
#      --fanout SCALE): wall time and peak RSS from GNU time.
#
# Targets: fencegate >= 5x faster than fence_redfish for one host; 1,000 systems in one call.
# fencegate is measured with its defaults (session auth, which falls back to basic where, as
# on sushy, there is no SessionService) and with auth=basic (no service root, no session).
# Needs: hyperfine, fence-agents (fence_redfish), GNU time, curl, openssl, python3, and a
# Python with sushy_tools (pip install sushy-tools==2.2.0) on PATH or in $SUSHY_PYTHON.
# Everything runs on 127.0.0.1 on free ports. Secrets are passed in files, never in argv.
#
# Usage: bench/redfish.sh [--runs N] [--scale N] [--record FILE] [--skip-build]
# FENCEGATE / BMCSIM override the binaries (default: target/release/…, built here).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=15
SCALE=1000
RECORD=
BUILD=1
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --scale) SCALE=$2; shift 2 ;;
    --record) RECORD=$2; shift 2 ;;
    --skip-build) BUILD=0; shift ;;
    *) echo "usage: $0 [--runs N] [--scale N] [--record FILE] [--skip-build]" >&2; exit 2 ;;
  esac
done

for t in hyperfine fence_redfish /usr/bin/time curl openssl python3; do
  command -v "$t" >/dev/null || { echo "bench: missing $t (Debian: hyperfine fence-agents time curl openssl python3)" >&2; exit 1; }
done
PY=${SUSHY_PYTHON:-}
if [ -z "$PY" ]; then
  for c in $(command -v sushy-emulator >/dev/null && head -1 "$(command -v sushy-emulator)" | sed 's/^#!//') python3 python; do
    if "$c" -c 'import sushy_tools, bcrypt' 2>/dev/null; then PY=$c; break; fi
  done
fi
[ -n "$PY" ] || { echo "bench: no Python with sushy_tools: python3 -m venv V && V/bin/pip install sushy-tools==2.2.0, then V/bin first on PATH" >&2; exit 1; }

if [ "$BUILD" = 1 ] && [ -z "${FENCEGATE:-}" ]; then
  (cd "$ROOT" && cargo build --release -q -p fencegate -p fencegate-bmcsim)
fi
FENCEGATE=${FENCEGATE:-$ROOT/target/release/fencegate}
BMCSIM=${BMCSIM:-$ROOT/target/release/fencegate-bmcsim}

TMP=$(mktemp -d /tmp/fencegate-bench-redfish.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
# 1,000 services and 1,000 clients need a few thousand descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

PW=$TMP/password
printf 'bench-pw-%s\n' "$RANDOM$RANDOM" > "$PW"
chmod 600 "$PW"
printf '#!/bin/sh\nhead -1 %s\n' "$PW" > "$TMP/pwscript"
chmod 700 "$TMP/pwscript"
# Start fencegate-bmcsim with N Redfish services; its control channel is on fds SIM_IN/SIM_OUT
# and its ready line in READY.
start_sim() { # N NAME
  mkfifo "$TMP/$2.in" "$TMP/$2.out"
  "$BMCSIM" --ipmi 0 --redfish "$1" --user admin --password-file "$PW" <"$TMP/$2.in" >"$TMP/$2.out" &
  PIDS+=($!)
  exec {SIM_IN}>"$TMP/$2.in"
  exec {SIM_OUT}<"$TMP/$2.out"
  read -r READY <&"$SIM_OUT"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- sushy-emulator -------------------------------------------------------------------
SPORT=$(free_port)
SPIN=$(sh "$ROOT/hw-fixtures/sushy/prepare.sh" "$TMP/sushy" "$SPORT" "$PW" "$PY")
(cd "$TMP/sushy" && SUSHY_FAKE_DELAY=0 exec "$PY" "$ROOT/hw-fixtures/sushy/sushy_fast.py" --config sushy.conf >sushy.log 2>&1) &
PIDS+=($!)
SYS=/redfish/v1/Systems/27946b59-9e44-4fa7-8e91-f3527a1ef094
# curl reads the user and password from a config file, not argv.
printf 'user = "admin:%s"\ncacert = "%s"\nsilent\nshow-error\n' "$(head -1 "$PW")" "$TMP/sushy/cert.pem" > "$TMP/curl-sushy"
chmod 600 "$TMP/curl-sushy"
for _ in $(seq 100); do
  curl -K "$TMP/curl-sushy" -o /dev/null "https://127.0.0.1:$SPORT/redfish/v1/" 2>/dev/null && break
  sleep 0.2
done
ON_SUSHY="curl -K $TMP/curl-sushy -o /dev/null -X POST -H Content-Type:application/json -d '{\"ResetType\":\"On\"}' https://127.0.0.1:$SPORT$SYS/Actions/ComputerSystem.Reset"

# --- fencegate-bmcsim, one Redfish service for case 1 -------------------------------------
start_sim 1 sim1
READY1=$READY
RPORT=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["redfish"][0].rsplit(":",1)[1])' "$READY1")
RPIN=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["redfish_sha256"])' "$READY1")
printf 'user = "admin:%s"\ninsecure\nsilent\nshow-error\n' "$(head -1 "$PW")" > "$TMP/curl-sim"
chmod 600 "$TMP/curl-sim"
ON_SIM="curl -K $TMP/curl-sim -o /dev/null -X POST -H Content-Type:application/json -d '{\"ResetType\":\"On\"}' https://127.0.0.1:$RPORT/redfish/v1/Systems/1/Actions/ComputerSystem.Reset"

if ! "$FENCEGATE" --state-dir "$TMP/probe" fence --device "redfish://admin@127.0.0.1:$RPORT/redfish/v1/Systems/1?pin=$RPIN" --password-file "$PW" >"$TMP/probe.out" 2>&1; then
  echo "bench: fencegate cannot fence over Redfish (is the driver registered in this binary?):" >&2
  cat "$TMP/probe.out" >&2
  exit 1
fi

one_host() { # label port pin system prepare
  local label=$1 port=$2 pin=$3 sys=$4 prepare=$5 json=$TMP/$1.json
  hyperfine -N --style none --runs "$RUNS" --warmup 1 --export-json "$json" --prepare "$prepare" \
    -n fencegate "$FENCEGATE --state-dir $TMP/state-$label fence --device redfish://admin@127.0.0.1:$port$sys?pin=$pin --password-file $PW" \
    -n "fencegate auth=basic" "$FENCEGATE --state-dir $TMP/state-$label fence --device redfish://admin@127.0.0.1:$port$sys?pin=$pin&auth=basic --password-file $PW" \
    -n fence_redfish "fence_redfish --ip 127.0.0.1 --ipport $port --username admin --password-script $TMP/pwscript --ssl-insecure --systems-uri $sys -o off" \
    >/dev/null
  python3 - "$json" "$label" <<'PY'
import json, statistics, sys
res = {r["command"]: r["times"] for r in json.load(open(sys.argv[1]))["results"]}
fg, fr = statistics.median(res["fencegate"]), statistics.median(res["fence_redfish"])
fb = statistics.median(res["fencegate auth=basic"])
for name in ("fencegate", "fencegate auth=basic", "fence_redfish"):
    t = res[name]
    print("| %s | %s | %.1f ms | %.1f–%.1f ms | %.2f× |" % (sys.argv[2], name, statistics.median(t) * 1e3,
          min(t) * 1e3, max(t) * 1e3, statistics.median(t) / fg))
print("RATIO %.2f (auth=basic: %.2f)" % (fr / fg, fr / fb))
PY
}

ROWS1=$(one_host sushy "$SPORT" "$SPIN" "$SYS" "$ON_SUSHY")
ROWS2=$(one_host bmcsim "$RPORT" "$RPIN" /redfish/v1/Systems/1 "$ON_SIM")
# HTTP requests one fence costs the emulator (sushy closes every connection, so each is also
# a TCP connection and a TLS handshake): counted in sushy's access log.
requests_of() { # command...
  sh -c "$ON_SUSHY"
  local before after
  before=$(grep -c '" [0-9][0-9][0-9] ' "$TMP/sushy/sushy.log" || true)
  "$@" >/dev/null 2>&1 || true
  after=$(grep -c '" [0-9][0-9][0-9] ' "$TMP/sushy/sushy.log" || true)
  echo $((after - before))
}
REQ_FG=$(requests_of "$FENCEGATE" --state-dir "$TMP/state-count" fence --device "redfish://admin@127.0.0.1:$SPORT$SYS?pin=$SPIN" --password-file "$PW")
REQ_FGB=$(requests_of "$FENCEGATE" --state-dir "$TMP/state-count" fence --device "redfish://admin@127.0.0.1:$SPORT$SYS?pin=$SPIN&auth=basic" --password-file "$PW")
REQ_FR=$(requests_of fence_redfish --ip 127.0.0.1 --ipport "$SPORT" --username admin --password-script "$TMP/pwscript" --ssl-insecure --systems-uri "$SYS" -o off)
RATIO_SUSHY=$(echo "$ROWS1" | sed -n 's/^RATIO //p')
RATIO_SIM=$(echo "$ROWS2" | sed -n 's/^RATIO //p')

# --- SCALE simulated systems in one call -------------------------------------------------
start_sim "$SCALE" simscale
INV=$TMP/scale.toml
python3 - "$READY" "$PW" "$TMP/state-scale" > "$INV" <<'PY'
import json, sys
ready, pw, state = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
print('state_dir = "%s"\n[policy]\nstorm_limit = 0' % state)
for i, a in enumerate(ready["redfish"]):
    print('[devices.rf%04d]\ndriver = "redfish"\naddress = "%s"\nuser = "admin"\npassword_file = "%s"\n'
          'pin = "%s"\nsystem = "1"' % (i, a, pw, ready["redfish_sha256"]))
    print('[hosts.node%04d]\nlevels = [["rf%04d"]]' % (i, i))
PY
LAST=$(printf '%04d' $((SCALE - 1)))
set +e
/usr/bin/time -v "$FENCEGATE" --config "$INV" fence "node[0000-$LAST]" --fanout "$SCALE" >"$TMP/scale.out" 2>"$TMP/scale.time"
CODE=$?
set -e
WALL=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$TMP/scale.time")
RSS_KB=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$TMP/scale.time")
# The simulator's own truth: how many systems are off now.
OFF=0
for i in $(seq 0 $((SCALE - 1))); do
  printf '{"cmd":"power","redfish":%d}\n' "$i" >&"$SIM_IN"
  read -r ans <&"$SIM_OUT"
  [ "$ans" = '{"power":"off"}' ] && OFF=$((OFF + 1))
done
[ "$CODE" = 0 ] || { echo "bench: the scale run exited $CODE:" >&2; tail -20 "$TMP/scale.out" >&2; }

OUT=$(cat <<MD
| target | tool | median | min–max | vs fencegate |
| --- | --- | --- | --- | --- |
$(echo "$ROWS1" | grep '^|')
$(echo "$ROWS2" | grep '^|')

fence_redfish / fencegate (median, one host): sushy-emulator ${RATIO_SUSHY}×, fencegate-bmcsim ${RATIO_SIM}× (target ≥ 5×).
HTTP requests per fence on sushy: fencegate $REQ_FG, fencegate auth=basic $REQ_FGB, fence_redfish $REQ_FR.

| case | wall | peak RSS | exit | systems off (simulator truth) |
| --- | --- | --- | --- | --- |
| $SCALE simulated Redfish systems, one \`fencegate fence\` call, --fanout $SCALE | $WALL | $((RSS_KB / 1024)) MB | $CODE | $OFF of $SCALE |
MD
)
echo "$OUT"
if [ -n "$RECORD" ]; then echo "$OUT" > "$RECORD"; fi
