#!/bin/bash
# shop-cron: the falco-lab's scheduled shell worker. A bounded loop of jobs:
# health checks against nginx (curl), tar/gzip backups of the uploads, log
# rotation with mv/gzip, and cleanup with find -delete. LAB_ROOT is its data
# dir, WEB the nginx address, ITERATIONS the bound, PERIOD seconds per tick.
set -u
LAB_ROOT=${LAB_ROOT:-/var/lib/falco-lab}
WEB=${WEB:-127.0.0.2:8080}
ITERATIONS=${ITERATIONS:-2000}
PERIOD=${PERIOD:-1}
B=$LAB_ROOT/cron
mkdir -p "$B/backups" "$B/log"
i=0
while [ "$i" -lt "$ITERATIONS" ]; do
  i=$((i + 1))
  # every tick: health check
  if curl -sf -o /dev/null --max-time 3 "http://$WEB/healthz"; then
    echo "$(date +%s) ok" >> "$B/log/health.log"
  else
    echo "$(date +%s) fail" >> "$B/log/health.log"
  fi
  # every 3rd tick: API check through nginx
  if [ $((i % 3)) -eq 0 ]; then
    curl -s -o /dev/null --max-time 3 "http://$WEB/api/health" || true
  fi
  # every 10th tick: backup of the uploads
  if [ $((i % 10)) -eq 0 ]; then
    tar -C "$LAB_ROOT/app" -cf "$B/backups/uploads-$i.tar" uploads 2>/dev/null
    gzip -f "$B/backups/uploads-$i.tar"
  fi
  # every 15th tick: rotate the health log
  if [ $((i % 15)) -eq 0 ] && [ -f "$B/log/health.log" ]; then
    mv "$B/log/health.log" "$B/log/health.log.$i"
    gzip -f "$B/log/health.log.$i"
  fi
  # every 20th tick: cleanup of old backups and rotated logs
  if [ $((i % 20)) -eq 0 ]; then
    find "$B/backups" -name '*.tar.gz' -mmin +1 -delete
    find "$B/log" -name 'health.log.*.gz' -mmin +2 -delete
  fi
  sleep "$PERIOD"
done
