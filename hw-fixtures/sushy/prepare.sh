#!/bin/sh
# Prepare a private sushy-emulator instance (fake systems driver) in DIR:
#   DIR/cert.pem, DIR/key.pem  a fresh self-signed ECDSA certificate (SAN IP:127.0.0.1)
#   DIR/htpasswd               user `admin` with the password from PASSWORD_FILE (bcrypt)
#   DIR/sushy.conf             listen 127.0.0.1:PORT, own state directory DIR/state
# and print the certificate's pin (`sha256:<hex>`) on stdout.
#
# Usage: prepare.sh DIR PORT PASSWORD_FILE PYTHON
#   PYTHON must import sushy_tools and bcrypt (a venv with `pip install sushy-tools==2.2.0`).
# Start it with:  SUSHY_FAKE_DELAY=0 PYTHON sushy_fast.py --config DIR/sushy.conf
# The password never appears in argv: bcrypt reads it from the file.
set -eu
DIR=$1; PORT=$2; PASSWORD_FILE=$3; PYTHON=$4
mkdir -p "$DIR/state"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$DIR/key.pem" -out "$DIR/cert.pem" -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1,DNS:localhost 2>/dev/null
PASSWORD_FILE=$PASSWORD_FILE "$PYTHON" - "$DIR/htpasswd" <<'PY'
import os, sys, bcrypt
with open(os.environ["PASSWORD_FILE"], "rb") as f:
    pw = f.read().splitlines()[0]
with open(sys.argv[1], "w") as out:
    out.write("admin:" + bcrypt.hashpw(pw, bcrypt.gensalt(rounds=5)).decode() + "\n")
PY
cat > "$DIR/sushy.conf" <<CONF
SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'
SUSHY_EMULATOR_LISTEN_PORT = $PORT
SUSHY_EMULATOR_FAKE_DRIVER = True
SUSHY_EMULATOR_STATE_DIR = '$DIR/state'
SUSHY_EMULATOR_AUTH_FILE = '$DIR/htpasswd'
SUSHY_EMULATOR_SSL_CERT = '$DIR/cert.pem'
SUSHY_EMULATOR_SSL_KEY = '$DIR/key.pem'
SUSHY_EMULATOR_FAKE_SYSTEMS = [
    {'uuid': '27946b59-9e44-4fa7-8e91-f3527a1ef094', 'name': 'node1',
     'power_state': 'On', 'external_notifier': False,
     'nics': [{'mac': '00:5c:52:31:3a:9c', 'ip': '127.0.0.1'}]},
    {'uuid': '48295eb6-1b0f-4b43-a9a5-6a5e2f4f0c5e', 'name': 'node2',
     'power_state': 'On', 'external_notifier': False,
     'nics': [{'mac': '00:5c:52:31:3a:9d', 'ip': '127.0.0.1'}]},
]
CONF
fp=$(openssl x509 -in "$DIR/cert.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')
echo "sha256:$fp"
