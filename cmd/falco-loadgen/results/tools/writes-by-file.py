#!/usr/bin/env python3
"""writes-by-file.py OUT [PHASE]: pages written back per service and file kind
between BenchmarkDurability's marks of each phase whose name contains PHASE
(default 'default c1 rate1000', the steady 1,000 events/s phase), from the
trace and inode listing of writes-trace.sh."""
import bisect, collections, re, sys

out = sys.argv[1]
want = sys.argv[2] if len(sys.argv) > 2 else 'default c1 rate1000'

snaps = []  # (uptime, {inode: path})
for line in open(out + '/inodes.log'):
    line = line.rstrip('\n')
    if line.startswith('T '):
        snaps.append((float(line[2:]), {}))
    elif snaps:
        parts = line.split(' ', 1)
        if len(parts) == 2:
            snaps[-1][1][int(parts[0])] = parts[1]
times = [s[0] for s in snaps]


def path(ino, t):
    """The inode's name in the listing nearest to t (inodes are reused)."""
    i = bisect.bisect_left(times, t)
    for j in list(range(i, min(i + 6, len(snaps)))) + list(range(i - 1, max(i - 6, -1), -1)):
        if ino in snaps[j][1]:
            return snaps[j][1][ino]
    for s in snaps:
        if ino in s[1]:
            return s[1][ino] + ' (?)'
    return '?%d' % ino


stamp = re.compile(r'\s(\d+\.\d+):\s')
phases = collections.defaultdict(collections.Counter)
active = None
for line in open(out + '/trace.log'):
    m = stamp.search(line)
    if not m:
        continue
    t = float(m.group(1))
    if 'falco-bench start' in line:
        active = line.split('falco-bench start ', 1)[1].strip()
    elif 'falco-bench end' in line:
        active = None
    elif 'ext4_writepages_result' in line and active:
        ino = int(re.search(r'ino (\d+)', line).group(1))
        pages = int(re.search(r'pages_written (\d+)', line).group(1))
        if pages:
            phases[active][(ino, t)] += pages

for name, counts in phases.items():
    if want not in name:
        continue
    agg = collections.Counter()
    for (ino, t), pages in counts.items():
        p = re.sub(r'^.*/(falco-bench-\d+)/', r'\1/', path(ino, t))
        agg[(p.split('/')[0], re.sub(r'\d+', 'N', p.split('/')[-1]))] += pages
    total = sum(agg.values())
    print(name, 'total KiB', total * 4)
    for (svc, kind), pages in agg.most_common(40):
        print('  %-28s %-16s %10d KiB %5.1f%%' % (svc, kind, pages * 4, 100 * pages / total))
