"""Write results/latest.md (+ latest.json) and results/latest.png (or
NAME.md, .json, .png with run.py --name NAME)."""
import json
import os
import platform
import time

SCENARIO_TITLES = {
    'capacity': 'Capacity: N pages held open',
    'fanout': 'Fan-out: one event to N pages (time until the last page '
              'has it)',
    'sustained': 'Sustained fan-out: steady publish rate',
    'chat': 'Chat: M senders to N receivers, end-to-end latency',
    'reconnect': 'Reconnect storm: server restart with N pages open',
    'publish-cost': 'Cost of one publish: in-memory broker against the '
                    'redis broker (LivePageManager.publish in one process)',
    'slow-redis': 'Redis answering slowly, then hung: latency of the work '
                  'that needs no broker (heartbeats, health)',
    'shared-pages': 'Shared connection: what a further page attached to a '
                    'WebSocket costs (zorg.live only: the peers open a '
                    'connection per page)',
    'tabs': 'Browsers with several tabs: [browser] = the tabs as each '
            'system opens them (zorg.live: one WebSocket per browser '
            'carrying its tabs\' pages; the peers: one per tab, their only '
            'way), [tab] = one WebSocket per tab',
}


def machine():
    mem = '?'
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemTotal:'):
                    mem = '%.1f GiB' % (int(line.split()[1]) / 1048576.)
    except OSError:
        pass
    try:
        with open('/proc/loadavg') as f:
            load = ' '.join(f.read().split()[:3])
    except OSError:
        load = '?'
    return {'nproc': os.cpu_count(), 'memory': mem, 'loadavg': load,
            'kernel': platform.release(), 'python': platform.python_version(),
            'date': time.strftime('%Y-%m-%d %H:%M:%S %Z')}


def loadavg1():
    """The 1-minute load average (str), '?' if unknown."""
    try:
        with open('/proc/loadavg') as f:
            return f.read().split()[0]
    except OSError:
        return '?'


def fmt(v):
    if v is None:
        return '–'
    if isinstance(v, float):
        if 0 < abs(v) < 1:
            return '%.2g' % v     # 0.044 ms is not 0.0
        return '%.1f' % v if abs(v) < 1000 else '%.0f' % v
    return str(v)


def transport(name):
    """'lp', 'ws' or 'sse', from a system's name or its label (the tables
    compare only systems of one transport)."""
    if name.endswith('-ws') or 'WebSocket' in name:
        return 'ws'
    return 'lp' if name.endswith('-lp') or 'long-poll' in name else 'sse'


def size_of(row):
    """'last page ms p50 @5000' -> 5000 (0 without @N)."""
    head, sep, n = row.rpartition(' @')
    return int(n) if sep and n.isdigit() else 0


def table(rows, data, systems, kinds, baselines=None):
    """One column per system, then the ratios: a system against its
    baseline (zorg.live redis broker / the in-memory broker), and each
    other zorg.live system against each peer of its transport."""
    baselines = baselines or {}
    zorgs = [s for s in systems if kinds[s] == 'zorg' and
             s not in baselines]
    peers = [s for s in systems if kinds[s] != 'zorg']
    ratios = [(s, b) for s, b in baselines.items()
              if s in systems and b in systems]
    ratios += [(z, p) for z in zorgs for p in peers
               if transport(z) == transport(p)]
    head = ['metric'] + systems + ['%s / %s' % rp for rp in ratios]
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '---|' * len(head)]
    def marked(s, row):
        return data.get(s, {}).get('_marks', {}).get(row)
    for row in rows:
        if row.startswith('_'):
            continue
        cells = [row]
        for s in systems:
            m = marked(s, row)
            cells.append(fmt(data.get(s, {}).get(row)) +
                         (' (**%s**)' % m if m else ''))
        for z, p in ratios:
            a, b = data.get(z, {}).get(row), data.get(p, {}).get(row)
            ok = all(isinstance(x, (int, float)) and not isinstance(x, bool)
                     for x in (a, b))
            cell = '%.2f' % (a / b) if ok and b else '–'
            # a ratio of figures that the generator bounded says little
            if ok and b and (marked(z, row) or marked(p, row)):
                cell += ' (%s)' % ', '.join(
                    '%s %s' % (who, marked(x, row)) for who, x in (
                        ('zorg.live', z), ('peer', p)) if marked(x, row))
            cells.append(cell)
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


# issue 13's goals for the WebSocket transport: (goal, scenario, row, 'max'
# or 'min', target); a row ending in '@' is taken at the largest size N
# of the run (10,000 in `make bench-ws`), named in the goal's cell
WS_GOALS = [
    ('idle WebSocket connection <= 10 KB of server RSS (per open stream, '
     'its page attached; RSS step)', 'capacity',
     'server RSS KB per open stream (RSS step) @', 'max', 10.0),
    ('idle WebSocket connection: Python KB per open stream (tracemalloc)',
     'capacity', 'server Python KB per open stream (tracemalloc) @', 'max',
     10.0),
    ('idle WebSocket connection, no page attached yet (shared-pages; RSS '
     'step)', 'shared-pages',
     'server RSS KB per connection, no page attached (RSS step)', 'max',
     10.0),
    ('idle WebSocket connection, no page attached: Python KB '
     '(tracemalloc)', 'shared-pages',
     'server Python KB per connection, no page attached (tracemalloc)',
     'max', 10.0),
    ('each further page on a shared connection <= 2 KB (RSS step)',
     'shared-pages', 'server RSS KB per further page attached (RSS step)',
     'max', 2.0),
    ('each further page: Python KB (tracemalloc)', 'shared-pages',
     'server Python KB per further page attached (tracemalloc)', 'max', 2.0),
    ('10,000 connections held, none failed (failures)', 'capacity',
     'failures @', 'max', 0),
    ('fan-out to 10,000 pages: last page <= 150 ms (p50 of rounds)',
     'fanout', 'last page ms p50 @', 'max', 150.0),
    ('fan-out: server CPU us per delivery (the server\'s own cost, '
     'whatever bounded the time)', 'fanout', 'server CPU us/delivery @',
     None, None),
    ('>= 80,000 deliveries/s sustained', 'sustained', 'max deliveries/s',
     'min', 80000),
    ('sustained: server CPU us per delivery there', 'sustained',
     'server CPU us/delivery there', None, None),
    ('chat, 1,000 receivers, input over the socket: p50 <= 5 ms', 'chat',
     'latency ms p50', 'max', 5.0),
    ('chat: p99 <= 50 ms', 'chat', 'latency ms p99', 'max', 50.0),
    ('browsers x tabs (2,000 x 5), each system\'s way: server RSS MB over '
     'the baseline', 'tabs', 'server RSS MB over the baseline [browser]',
     None, None),
    ('browsers x tabs, each system\'s way: fan-out, last tab ms p50',
     'tabs', 'fan-out: last tab ms p50 [browser]', None, None),
    ('browsers x tabs, one WebSocket per tab: server RSS MB over the '
     'baseline', 'tabs', 'server RSS MB over the baseline [tab]', None,
     None),
    ('browsers x tabs, one WebSocket per tab: fan-out, last tab ms p50',
     'tabs', 'fan-out: last tab ms p50 [tab]', None, None),
]


def goals_table(results):
    """The WebSocket goals (WS_GOALS) with each WebSocket system's figure,
    what bounded it, the ratios zorg.live / peer and whether zorg.live
    met the goal; '' when no WebSocket system ran."""
    kinds = results['kinds']
    ws = [s for s in results['systems'] if transport(s) == 'ws']
    zorgs = [s for s in ws if kinds.get(s) == 'zorg']
    peers = [s for s in ws if kinds.get(s) != 'zorg']
    if not zorgs:
        return ''
    head = ['goal'] + ws + ['%s / %s' % (z, p) for z in zorgs
                            for p in peers] + ['goal met (%s)' % z
                                               for z in zorgs]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for title, scen, row, op, target in WS_GOALS:
        data = results['scenarios'].get(scen, {})

        def find(s):
            d = data.get(s, {})
            if not row.endswith('@'):
                return row if row in d else None
            sized = [k for k in d if k.startswith(row)]
            return max(sized, key=size_of) if sized else None

        def value(s):
            r = find(s)
            return None if r is None else data[s][r]

        def mark(s):
            r = find(s)
            return data.get(s, {}).get('_marks', {}).get(r) if r else None
        if not any(value(s) is not None for s in ws):
            continue
        sizes = sorted({size_of(find(s)) for s in ws if find(s)})
        cells = [title + ''.join(' @%d' % n for n in sizes if n)]
        for s in ws:
            m = mark(s)
            cells.append(fmt(value(s)) + (' (**%s**)' % m if m else ''))
        for z in zorgs:
            for p in peers:
                a, b = value(z), value(p)
                ok = all(isinstance(x, (int, float)) and
                         not isinstance(x, bool) for x in (a, b))
                bound = [x for x in (mark(z), mark(p)) if x]
                cells.append('%.2f%s' % (a / b, ' (a figure %s)' % bound[0]
                                          if bound else '')
                             if ok and b else '–')
        for z in zorgs:
            v = value(z)
            if op is None or not isinstance(v, (int, float)):
                cells.append('–')
            else:
                met = v <= target if op == 'max' else v >= target
                m = mark(z)
                # bound by the generator: "at least this good", so a
                # miss is not shown to be the server's
                cells.append('yes' if met else 'no' if not m else
                             'not shown (%s)' % m)
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def write(results, outdir, argv, name='latest'):
    os.makedirs(outdir, exist_ok=True)
    meta = results['meta']
    kinds = results['kinds']
    md = ['# zorg.live benchmarks', '',
          '- date: %s' % meta['date'],
          '- machine: %s CPUs (nproc), %s RAM (MemTotal), Linux %s, '
          'Python %s' % (meta['nproc'], meta['memory'], meta['kernel'],
                         meta['python']),
          '- load average (1/5/15 min) at start: %s, at end: %s (other '
          'processes on the machine skew the numbers)' % (
              meta['loadavg'], machine()['loadavg']),
          '- command: `%s`' % ' '.join(argv),
          '- mode: %s; generator: %d worker processes' % (
              meta['mode'], meta['workers']),
          '']
    for note in results['notes']:
        md.append('> %s' % note)
    if results['notes']:
        md.append('')
    goals = goals_table(results)
    if goals:
        md += ['## WebSocket: the goals of issue 13', '',
               'Each figure from the tables below (a mark says what bounded '
               'it: a figure bound by the load generator says "at least '
               'this good"; a ratio of two such figures says little about '
               'the servers). Ratios below 1 are better for zorg.live, '
               'except deliveries/s.', '', goals, '']
    for scen, per_sys in results['scenarios'].items():
        systems = [s for s in results['systems'] if s in per_sys]
        if not systems:
            continue
        rows = []
        for s in systems:
            for k in per_sys[s]:
                if k not in rows:
                    rows.append(k)
        # the rows of one size together (a system may add rows of its own)
        rows.sort(key=size_of)
        md += ['## ' + SCENARIO_TITLES.get(scen, scen), '',
               table(rows, per_sys, systems, kinds,
                     results.get('baselines')), '']
        notes = ['- %s, %s' % (s, note) for s in systems
                 for note in per_sys[s].get('_notes', ())]
        if notes:
            md += notes + ['']
    md += ['![fan-out and memory](%s.png)' % name, '']
    with open(os.path.join(outdir, name + '.md'), 'w') as f:
        f.write('\n'.join(md))
    with open(os.path.join(outdir, name + '.json'), 'w') as f:
        json.dump(results, f, indent=1, default=str)
    plot(results['plot'], os.path.join(outdir, name + '.png'))


def plot(data, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, series in sorted(data.items()):
        fan = sorted(series.get('fanout', []))
        if fan and any(y is not None for _, y in fan):
            ax1.plot([x for x, y in fan if y is not None],
                     [y for x, y in fan if y is not None], 'o-', label=name)
        mem = sorted(series.get('memory', []))
        if mem:
            ax2.plot([x for x, _ in mem], [y for _, y in mem], 'o-',
                     label=name)
    ax1.set(title='Fan-out: time until the last page has the event (p50)',
            xlabel='pages N', ylabel='ms')
    ax2.set(title='Server RSS per page', xlabel='pages N', ylabel='KB/page')
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
