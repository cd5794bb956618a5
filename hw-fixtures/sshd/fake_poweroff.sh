#!/bin/sh
# Forced command (authorized_keys command="...") simulating a host's
# "poweroff -f".  The client's request is in $SSH_ORIGINAL_COMMAND.
# State dir = this script's directory.
#   poweroff -f | /sbin/poweroff -f | /usr/sbin/poweroff -f |
#   systemctl poweroff --force --force | systemctl poweroff -ff
#       -> append "<epoch> <client-ip> mode=<m> cmd=<cmd>" to poweroff.marker,
#          then act per the file poweroff.mode (default: drop):
#          drop   the host dies: SIGTERM this sshd's listener (PidFile
#                 sshd.pid) and SIGKILL the session's sshd processes; the
#                 client sees "closed by remote host" (ssh exit 255) and later
#                 connects are refused until sshd is restarted ("power on")
#          exit0  print nothing, exit 0 (host accepted and is still up)
#          hang   never answer (client timeouts); gives up after 600 s, or
#                 after the number of seconds in the file poweroff.hang_secs
#          refuse "poweroff: simulated failure" on stderr, exit 1
#   "" | true | echo alive | uptime  -> liveness probe: prints "alive", exit 0
#   anything else                     -> "forbidden: ..." on stderr, exit 126
D=$(cd "$(dirname "$0")" && pwd)
MODE=$(cat "$D/poweroff.mode" 2>/dev/null || echo drop)
case "$SSH_ORIGINAL_COMMAND" in
  "poweroff -f"|"/sbin/poweroff -f"|"/usr/sbin/poweroff -f"|"systemctl poweroff --force --force"|"systemctl poweroff -ff")
    printf '%s %s mode=%s cmd=%s\n' "$(date +%s.%N)" "${SSH_CLIENT%% *}" "$MODE" \
      "$SSH_ORIGINAL_COMMAND" >> "$D/poweroff.marker"
    case "$MODE" in
      exit0)  exit 0 ;;
      hang)   sleep "$(cat "$D/poweroff.hang_secs" 2>/dev/null || echo 600)"; exit 0 ;;
      refuse) echo "poweroff: simulated failure" >&2; exit 1 ;;
      *)      [ -f "$D/sshd.pid" ] && kill -TERM "$(cat "$D/sshd.pid")" 2>/dev/null
              sess=$PPID; mon=$(ps -o ppid= -p "$sess" | tr -d ' ')
              kill -KILL "$sess" "$mon" 2>/dev/null
              exit 0 ;;
    esac ;;
  ""|"true"|"echo alive"|"uptime")
    echo alive; exit 0 ;;
  *)
    echo "forbidden: $SSH_ORIGINAL_COMMAND" >&2; exit 126 ;;
esac
