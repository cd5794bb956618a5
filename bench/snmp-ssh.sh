#!/usr/bin/env bash
# SNMP PDU and SSH benchmark: fencegate against the tools it replaces, measured in one run.
#
#   1. PDU outlet off + verification against net-snmp snmpd serving the APC outlet table
#      (hw-fixtures/snmpd, pass_persist): `fencegate fence --device snmp://…/outlet/4` vs
#      `fence_apc_snmp -o off`, SNMPv2c and SNMPv3 authPriv (SHA/AES). A prepare step
#      switches the outlet back on (in the emulator's state file) and wipes fencegate's
#      journal before every run, so each run is a real on -> off transition.
#      Target: fencegate >= 20x faster.
#   2. SSH `poweroff -f` against OpenSSH sshd with the hw-fixtures/sshd forced command in
#      mode drop (the "host" dies: the connection drops and the port refuses), sshd
#      restarted in the prepare step: `fencegate fence` (an inventory whose host accepts
#      liveness loss; liveness_hold_ms=0, i.e. delivery plus one quiet probe, the closest
#      thing to what ssh measures) vs `ssh … 'poweroff -f'` (which exits 255 when the
#      connection drops, hence -i). Target: fencegate <= 0.5x the ssh time. The default
#      3 s liveness hold is measured too, for the record, not compared.
#
# Needs: hyperfine, snmpd + snmp (net-snmp), fence-agents (fence_apc_snmp), python3,
# openssh-server + openssh-client; run as root (sshd runs as the unprivileged user
# fencehost, created if missing, like the tests do). Everything listens on 127.0.0.1 on
# free ports; secrets are passed in files (mode 0600), never in argv.
#
# Usage: bench/snmp-ssh.sh [--runs N] [--record FILE] [--skip-build]
# FENCEGATE overrides the binary (default: target/release/fencegate, built here).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=20
RECORD=
BUILD=1
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --record) RECORD=$2; shift 2 ;;
    --skip-build) BUILD=0; shift ;;
    *) echo "usage: $0 [--runs N] [--record FILE] [--skip-build]" >&2; exit 2 ;;
  esac
done

for t in hyperfine fence_apc_snmp python3 ssh ssh-keygen /usr/sbin/snmpd /usr/sbin/sshd runuser; do
  command -v "$t" >/dev/null || {
    echo "bench: missing $t (Debian: hyperfine snmpd snmp fence-agents python3 openssh-server openssh-client util-linux)" >&2
    exit 1
  }
done
[ "$(id -u)" = 0 ] || { echo "bench: run as root (sshd runs as the user fencehost)" >&2; exit 1; }

if [ "$BUILD" = 1 ] && [ -z "${FENCEGATE:-}" ]; then
  (cd "$ROOT" && cargo build --release -p fencegate)
fi
FENCEGATE=${FENCEGATE:-$ROOT/target/release/fencegate}
[ -x "$FENCEGATE" ] || { echo "bench: no fencegate binary at $FENCEGATE" >&2; exit 1; }

T=$(mktemp -d /tmp/fencegate-bench-snmp-ssh.XXXXXX)
chmod 755 "$T"
SNMPD_PID=
cleanup() {
  if [ -n "$SNMPD_PID" ]; then
    kill "$SNMPD_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SNMPD_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  if [ -f "$T/ssh/sshd.pid" ]; then kill "$(cat "$T/ssh/sshd.pid")" 2>/dev/null || true; fi
  rm -rf "$T"
}
trap cleanup EXIT

free_port() {  # $1 = tcp|udp
  python3 -c 'import socket,sys
k = socket.SOCK_STREAM if sys.argv[1] == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, k); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' "$1"
}
secret() {  # $1 = file, $2 = content
  (umask 077 && printf '%s\n' "$2" > "$1")
}
median_ms() {  # $1 = hyperfine JSON, $2 = index
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][int(sys.argv[2])]; print("%.1f %.1f %.1f" % (r["median"]*1e3, r["min"]*1e3, r["max"]*1e3))' "$1" "$2"
}

# --- 1. SNMP: snmpd with the APC outlet table ---------------------------------------
S=$T/snmpd
mkdir -p "$S"
SNMP_PORT=$(free_port udp)
cp "$ROOT/hw-fixtures/snmpd/apc_pdu_pass.py" "$S/"
sed "s/^agentAddress .*/agentAddress udp:127.0.0.1:$SNMP_PORT/" "$ROOT/hw-fixtures/snmpd/snmpd.conf" > "$S/snmpd.conf"
# exec: $! must be snmpd itself, so that the cleanup stops it.
(cd "$S" && exec env SNMP_PERSISTENT_DIR="$S/persist" MIBS= MIBDIRS=/nonexistent \
  APC_STATE="$S/apc_state.json" /usr/sbin/snmpd -f -Lo -C -c ./snmpd.conf -p ./snmpd.pid \
  >"$S/snmpd.log" 2>&1) &
SNMPD_PID=$!
secret "$T/community" private
secret "$T/v3-auth" authpass123
secret "$T/v3-priv" privpass123
URL_V2C="snmp://127.0.0.1:$SNMP_PORT/outlet/4?version=2c&community_file=$T/community"
URL_V3="snmp://fenceuser@127.0.0.1:$SNMP_PORT/outlet/4?version=3&auth_password_file=$T/v3-auth&priv_password_file=$T/v3-priv"
for _ in $(seq 100); do
  "$FENCEGATE" --state-dir "$T/probe" status --device "$URL_V2C" >/dev/null 2>&1 && break
  sleep 0.1
done
"$FENCEGATE" --state-dir "$T/probe" status --device "$URL_V2C" >/dev/null || {
  echo "bench: fencegate cannot read the PDU (is the snmp driver built in?)" >&2
  "$FENCEGATE" --state-dir "$T/probe" status --device "$URL_V2C" || true
  exit 1
}
cat > "$T/prepare-snmp.sh" <<PREP
#!/bin/sh
python3 - <<'PY'
import json, os
p = "$S/apc_state.json"
st = json.load(open(p))
st["outlets"]["4"].update(state=1, reboot_until=None)
json.dump(st, open(p + ".prep", "w")); os.replace(p + ".prep", p)
PY
rm -rf "$T/state"
PREP
chmod 755 "$T/prepare-snmp.sh"
cat > "$T/apc-v2c.opts" <<OPTS
ip=127.0.0.1
ipport=$SNMP_PORT
snmp_version=2c
community=private
plug=4
action=off
OPTS
cat > "$T/apc-v3.opts" <<OPTS
ip=127.0.0.1
ipport=$SNMP_PORT
snmp_version=3
username=fenceuser
password=authpass123
snmp_auth_prot=SHA
snmp_sec_level=authPriv
snmp_priv_prot=AES
snmp_priv_passwd=privpass123
plug=4
action=off
OPTS
chmod 600 "$T"/apc-*.opts
export PYTHONWARNINGS=ignore

hyperfine -N --runs "$RUNS" --warmup 2 --prepare "$T/prepare-snmp.sh" --export-json "$T/snmp.json" \
  -n "fencegate fence snmp v2c" "$FENCEGATE --state-dir $T/state fence --force --device $URL_V2C" \
  -n "fence_apc_snmp -o off v2c" "sh -c 'fence_apc_snmp < $T/apc-v2c.opts'" \
  -n "fencegate fence snmp v3" "$FENCEGATE --state-dir $T/state fence --force --device $URL_V3" \
  -n "fence_apc_snmp -o off v3" "sh -c 'fence_apc_snmp < $T/apc-v3.opts'"

# --- 2. SSH: OpenSSH sshd as fencehost with the forced poweroff command -------------
id fencehost >/dev/null 2>&1 ||
  useradd --system --no-create-home --home-dir /nonexistent --shell /bin/sh fencehost
D=$T/ssh
C=$T/client
mkdir -p "$D" "$C"
SSH_PORT=$(free_port tcp)
cp "$ROOT/hw-fixtures/sshd/fake_poweroff.sh" "$D/"
ssh-keygen -q -t ed25519 -N '' -C bench-host -f "$D/ssh_host_ed25519_key"
ssh-keygen -q -t ed25519 -N '' -C bench-client -f "$C/id_fence"
echo "command=\"$D/fake_poweroff.sh\",restrict $(cat "$C/id_fence.pub")" > "$D/authorized_keys"
sed -e "s|@DIR@|$D|g" -e "s|@PORT@|$SSH_PORT|g" -e "s|@USER@|fencehost|g" \
  "$ROOT/hw-fixtures/sshd/sshd_config.in" > "$D/sshd_config"
echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$D/ssh_host_ed25519_key.pub")" > "$C/known_hosts"
echo drop > "$D/poweroff.mode"
chown -R fencehost: "$D"
cat > "$T/prepare-ssh.sh" <<PREP
#!/bin/sh
# "Power the host on again": a fresh sshd on the same port, and a fresh journal.
if [ -f "$D/sshd.pid" ]; then kill "\$(cat "$D/sshd.pid")" 2>/dev/null; fi
rm -rf "$T/ssh-state"
i=0
while python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", $SSH_PORT), 0.2)' 2>/dev/null; do
  i=\$((i+1)); [ \$i -gt 50 ] && exit 1; sleep 0.05
done
setsid -f runuser -u fencehost -- /usr/sbin/sshd -D -e -f "$D/sshd_config" </dev/null >>"$T/sshd.log" 2>&1
i=0
until python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", $SSH_PORT), 0.2)' 2>/dev/null; do
  i=\$((i+1)); [ \$i -gt 100 ] && exit 1; sleep 0.05
done
PREP
chmod 755 "$T/prepare-ssh.sh"
inventory() {  # $1 = file, $2 = liveness_hold_ms
  cat > "$1" <<INV
state_dir = "$T/ssh-state"

[policy]
storm_limit = 0

[devices.host1-ssh]
driver = "ssh"
address = "127.0.0.1:$SSH_PORT"
user = "fencehost"
key_file = "$C/id_fence"
known_hosts_file = "$C/known_hosts"
liveness_hold_ms = "$2"
probe_interval_ms = "20"

[hosts.host1]
levels = [["host1-ssh"]]

[hosts.host1.policy]
accept_liveness_loss = true
INV
}
inventory "$T/ssh-hold0.toml" 0
inventory "$T/ssh-hold3000.toml" 3000
SSHO="-F /dev/null -p $SSH_PORT -i $C/id_fence -o IdentitiesOnly=yes -o UserKnownHostsFile=$C/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=5"
"$T/prepare-ssh.sh"
# One checked run each: fencegate must succeed, and the forced command must have run.
"$FENCEGATE" --config "$T/ssh-hold0.toml" fence host1 --force >/dev/null
grep -q 'mode=drop cmd=poweroff -f' "$D/poweroff.marker"
"$T/prepare-ssh.sh"

hyperfine -N --runs "$RUNS" --warmup 1 --prepare "$T/prepare-ssh.sh" -i --export-json "$T/ssh.json" \
  -n "fencegate fence ssh (hold 0)" "$FENCEGATE --config $T/ssh-hold0.toml fence host1 --force" \
  -n "ssh 'poweroff -f' (OpenSSH)" "ssh $SSHO fencehost@127.0.0.1 'poweroff -f'"
hyperfine -N --runs 3 --prepare "$T/prepare-ssh.sh" --export-json "$T/ssh-hold.json" \
  -n "fencegate fence ssh (default hold 3000 ms)" "$FENCEGATE --config $T/ssh-hold3000.toml fence host1 --force"
MARKS=$(wc -l < "$D/poweroff.marker")

# --- ratios -------------------------------------------------------------------------
read -r FV2 FV2MIN FV2MAX < <(median_ms "$T/snmp.json" 0)
read -r AV2 AV2MIN AV2MAX < <(median_ms "$T/snmp.json" 1)
read -r FV3 FV3MIN FV3MAX < <(median_ms "$T/snmp.json" 2)
read -r AV3 AV3MIN AV3MAX < <(median_ms "$T/snmp.json" 3)
read -r FS FSMIN FSMAX < <(median_ms "$T/ssh.json" 0)
read -r OS OSMIN OSMAX < <(median_ms "$T/ssh.json" 1)
read -r FH FHMIN FHMAX < <(median_ms "$T/ssh-hold.json" 0)
ratio() { python3 -c "import sys; print('%.1f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
R2=$(ratio "$AV2" "$FV2"); R3=$(ratio "$AV3" "$FV3")
RS=$(python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$FS" "$OS")
SUMMARY=$(cat <<SUM
| case | median ms | min–max ms |
| --- | --- | --- |
| \`fencegate fence\` snmp v2c (off + 2 fresh Off reads) | $FV2 | $FV2MIN–$FV2MAX |
| \`fence_apc_snmp -o off\` v2c | $AV2 | $AV2MIN–$AV2MAX |
| \`fencegate fence\` snmp v3 authPriv SHA/AES | $FV3 | $FV3MIN–$FV3MAX |
| \`fence_apc_snmp -o off\` v3 authPriv SHA/AES | $AV3 | $AV3MIN–$AV3MAX |
| \`fencegate fence\` ssh, liveness_hold_ms=0 | $FS | $FSMIN–$FSMAX |
| \`ssh … 'poweroff -f'\` (OpenSSH, exit 255) | $OS | $OSMIN–$OSMAX |
| \`fencegate fence\` ssh, default hold 3000 ms (not compared) | $FH | $FHMIN–$FHMAX |

- SNMP v2c: fence_apc_snmp / fencegate = **${R2}x** (target >= 20x)
- SNMP v3:  fence_apc_snmp / fencegate = **${R3}x** (target >= 20x)
- SSH: fencegate / ssh = **${RS}x** (target <= 0.5x); poweroff commands seen by the host: $MARKS
SUM
)
echo
echo "$SUMMARY"
if [ -n "$RECORD" ]; then
  {
    echo "Run $(date -u +%Y-%m-%dT%H:%MZ), $RUNS runs per case, load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores."
    echo
    echo "$SUMMARY"
  } > "$RECORD"
fi
