#!/bin/bash
# writes-trace.sh OUT MNT -- command...
# Runs command while the kernel traces every writeback of every inode of the
# file system mounted at MNT (tracepoint ext4:ext4_writepages_result, filtered
# on its device), and lists MNT's inodes every 0.5 s, so that
# writes-by-file.py can attribute the pages written to files, phase by phase
# (BenchmarkDurability -dur.mark /sys/kernel/tracing/trace_marker). Root only.
# The tracepoint counts the pages of the folios written back: for files the
# page cache holds in large folios (the journal's zero-filled segments) that
# is far more than the bytes the device writes; for Badger's files it is
# their bytes. Used for cmd/falco-loadgen/results/2026-12-07b.md.
set -u
out=$1 mnt=$2; shift 3
T=/sys/kernel/tracing
[ -e $T/trace ] || mount -t tracefs nodev $T
read -r major minor < <(stat -c '%Hd %Ld' "$mnt")
kdev=$(( major << 20 | minor ))                 # the kernel's dev_t, as the tracepoint's filter sees it
mkdir -p "$out"
echo 0 > $T/tracing_on; echo > $T/trace
echo 65536 > $T/buffer_size_kb
echo "dev == $kdev" > $T/events/ext4/ext4_writepages_result/filter
echo 1 > $T/events/ext4/ext4_writepages_result/enable
echo 1 > $T/tracing_on
( while :; do echo "T $(cut -d' ' -f1 /proc/uptime)"; find "$mnt" -printf '%i %p\n' 2>/dev/null; sleep 0.5; done ) > "$out/inodes.log" &
lister=$!
cat $T/trace_pipe > "$out/trace.log" &
reader=$!
"$@"
rc=$?
sleep 1
kill $lister $reader
echo 0 > $T/tracing_on
echo 0 > $T/events/ext4/ext4_writepages_result/enable
exit $rc
