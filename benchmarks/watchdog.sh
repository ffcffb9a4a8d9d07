#!/usr/bin/env bash
# Run a resumable benchmark command; if its process uses no CPU for $STALL seconds (the XLA CPU
# hang described in policyfit/__init__.py), kill it and start it again (finished trials are skipped,
# interrupted ones resume from their checkpoints). Usage: benchmarks/watchdog.sh CMD ARGS...
STALL=${STALL:-240}
while true; do
  "$@" &
  pid=$!
  last=-1; still=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 30
    ticks=$(awk '{print $14+$15}' "/proc/$pid/stat" 2>/dev/null || echo -1)
    if [ "$ticks" = "$last" ]; then still=$((still + 30)); else still=0; last=$ticks; fi
    if [ "$still" -ge "$STALL" ]; then
      echo "watchdog: no CPU for ${STALL}s, restarting: $*" >&2
      kill -9 "$pid"
      break
    fi
  done
  wait "$pid" 2>/dev/null && exit 0
  [ "$still" -ge "$STALL" ] || exit 1
done
