#!/usr/bin/env python3
"""Before / after: one markdown table per scenario from two results files.

    python benchmarks/compare.py BEFORE.json AFTER.json [--out FILE.md]
                                 [--systems a,b] [--labels before,after]

For every system that is in both runs: its figure before, after and the
ratio after / before. The peers (aiohttp, nginx+nchan) do not change
between the runs, so their after / before ratio is the noise of the
machine: a zorg.live ratio is only worth what the peers' ratios beside it
say. Each run's zorg.live / peer ratios are repeated (from the same run:
the ratios to quote). Figures marked as bound by the load generator keep
their mark.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from report import SCENARIO_TITLES, fmt, size_of, transport  # noqa: E402


def number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def cell(data, row):
    if data is None or row not in data:
        return '–'
    m = data.get('_marks', {}).get(row)
    return fmt(data[row]) + (' (**%s**)' % m if m else '')


def ratio(a, b):
    if number(a) and number(b) and b:
        return '%.2f' % (a / b)
    return '–'


def compare(before, after, only=None, labels=('before', 'after')):
    lb, la = labels
    md = ['# zorg.live benchmarks: %s and %s' % (lb, la), '']
    for label, run in ((lb, before), (la, after)):
        meta = run['meta']
        md.append('- %s: %s, mode %s, %s CPUs, load average at start %s' % (
            label, meta.get('date'), meta.get('mode'), meta.get('nproc'),
            meta.get('loadavg')))
    md += ['', 'Ratios after / before: below 1 is better for times, memory '
           'and CPU, above 1 for pages and deliveries/s. The peers did not '
           'change: their after / before is the noise between the runs.',
           '']
    kinds = dict(before.get('kinds', {}))
    kinds.update(after.get('kinds', {}))
    scens = list(before['scenarios'])
    scens += [s for s in after['scenarios'] if s not in scens]
    for scen in scens:
        b, a = before['scenarios'].get(scen, {}), \
            after['scenarios'].get(scen, {})
        systems = [s for s in after.get('systems', []) if s in a or s in b]
        systems += [s for s in before.get('systems', [])
                    if s not in systems and (s in a or s in b)]
        if only:
            systems = [s for s in systems if any(o in s for o in only)]
        if not systems:
            continue
        rows = []
        for s in systems:
            for d in (b.get(s, {}), a.get(s, {})):
                for k in d:
                    if not k.startswith('_') and k not in rows:
                        rows.append(k)
        rows.sort(key=size_of)
        head = ['metric']
        for s in systems:
            head += ['%s, %s' % (s, lb), '%s, %s' % (s, la), 'after / before']
        # zorg.live / peer of the same transport, in each run
        zp = [(z, p) for z in systems if kinds.get(z) == 'zorg'
              for p in systems if kinds.get(p) != 'zorg' and
              transport(p) == transport(z)]
        for z, p in zp:
            head += ['%s / %s, %s' % (z, p, lb), '%s / %s, %s' % (z, p, la)]
        lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
        for row in rows:
            cells = [row]
            for s in systems:
                x, y = b.get(s, {}).get(row), a.get(s, {}).get(row)
                cells += [cell(b.get(s), row), cell(a.get(s), row),
                          ratio(y, x)]
            for z, p in zp:
                cells += [ratio(b.get(z, {}).get(row), b.get(p, {}).get(row)),
                          ratio(a.get(z, {}).get(row), a.get(p, {}).get(row))]
            lines.append('| ' + ' | '.join(cells) + ' |')
        md += ['## ' + SCENARIO_TITLES.get(scen, scen), ''] + lines + ['']
    return '\n'.join(md)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('before')
    p.add_argument('after')
    p.add_argument('--out', help='write the markdown here (default: print)')
    p.add_argument('--systems', help='only systems whose label contains '
                   'one of these (comma-separated)')
    p.add_argument('--labels', default='before,after')
    args = p.parse_args()
    with open(args.before) as f:
        before = json.load(f)
    with open(args.after) as f:
        after = json.load(f)
    only = [s.strip() for s in args.systems.split(',')] if args.systems \
        else None
    text = compare(before, after, only, tuple(args.labels.split(',', 1)))
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text)
    else:
        print(text)


if __name__ == '__main__':
    main()
