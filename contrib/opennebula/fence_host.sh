#!/bin/sh
# OpenNebula fence_host.sh for fencegate.
#
# host_error.rb runs this script with the failed host's XML (strict base64) on stdin and
# recovers the host's VMs elsewhere only if it exits 0. fencegate exits 0 only after the
# host's power was verified off by fresh readings; anything else exits non-zero and the
# VMs stay where they are.
#
# Install next to host_error.rb (usually /var/lib/one/remotes/hooks/ft/fence_host.sh),
# executable by oneadmin. The inventory names the host's BMC/PDU devices; the credentials
# live in files readable by oneadmin only (mode 0600), never in the host template.
exec /usr/local/bin/fencegate opennebula fence-host --config /etc/fencegate/fencegate.toml
