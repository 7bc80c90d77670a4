#!/usr/bin/env python3
"""Run the live-page benchmarks and write results/latest.md and .png.

    python benchmarks/run.py [--quick] [--systems a,b] [--scenarios x,y]
"""
import argparse
import asyncio
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import loadgen      # noqa: E402
import report       # noqa: E402
import scenarios    # noqa: E402
import systems      # noqa: E402

T0 = time.time()


def log(msg):
    print('[%6.1fs] %s' % (time.time() - T0, msg), flush=True)


def parse():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--quick', action='store_true',
                   help='small N, few rounds (under 5 minutes)')
    p.add_argument('--systems',
                   help='comma-separated, from: %s (default: all; --quick:'
                   ' all but %s)' % (', '.join(systems.SYSTEMS), ', '.join(
                       n for n, s in systems.SYSTEMS.items()
                       if not s.in_quick)))
    p.add_argument('--scenarios',
                   help='comma-separated, from: %s (default: all)' %
                   ', '.join(scenarios.SCENARIOS))
    p.add_argument('--sizes', help='override capacity/fan-out sizes, '
                   'e.g. 10000 or 1000,5000')
    p.add_argument('--workers', type=int, default=0,
                   help='generator processes (default: 1 per 4,000 pages,'
                   ' at least 2)')
    p.add_argument('--out', default=os.path.join(HERE, 'results'))
    p.add_argument('--name', default='latest',
                   help='results file names: NAME.md, NAME.json, NAME.png'
                   ' (default latest)')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                   help='override one setting of scenarios.QUICK / FULL '
                   '(a number, or numbers separated by commas for a list),'
                   ' e.g. --set slow_pages=200 --set sustained_rates=5,10')
    args = p.parse_args()
    if args.systems is None:
        args.systems = ','.join(n for n, s in systems.SYSTEMS.items()
                                if s.in_quick or not args.quick)
    args.systems = [s.strip() for s in args.systems.split(',') if s.strip()]
    args.all_scenarios = args.scenarios is None
    if args.scenarios is None:
        args.scenarios = ','.join(scenarios.SCENARIOS)
    args.scenarios = [s.strip() for s in args.scenarios.split(',')
                      if s.strip()]
    for s in args.systems:
        if s not in systems.SYSTEMS:
            p.error('unknown system %r' % s)
    for s in args.scenarios:
        if s not in scenarios.SCENARIOS:
            p.error('unknown scenario %r' % s)
    return args


async def main(args):
    loadgen.raise_nofile()
    memprobe = systems.enable_memprobe()     # before any server starts
    settings = dict(scenarios.QUICK if args.quick else scenarios.FULL)
    sizes = None
    if args.sizes:
        sizes = [int(x) for x in args.sizes.split(',')]
        settings['capacity_sizes'] = settings['fanout_sizes'] = sizes
    overrides = {}
    for item in args.set:
        key, _, value = item.partition('=')
        if key not in settings:
            raise SystemExit('--set: unknown setting %r' % key)
        values = [float(v) if '.' in v else int(v)
                  for v in value.split(',')]
        overrides[key] = values if isinstance(settings[key], list) \
            else values[0]
    settings.update(overrides)
    biggest = max(settings['capacity_sizes'] + settings['fanout_sizes'] +
                  settings['reconnect_sizes'] +
                  [settings['sustained_size'], settings['chat_receivers']])
    nworkers = args.workers or max(2, math.ceil(biggest / 4000.0))
    results = {'meta': dict(report.machine(),
                            mode='quick' if args.quick else 'full',
                            workers=nworkers, overrides=overrides),
               'systems': [], 'kinds': {}, 'baselines': {}, 'scenarios': {},
               'plot': {}, 'notes': []}
    log('generator: %d worker processes; systems %s; scenarios %s' % (
        nworkers, ', '.join(args.systems), ', '.join(args.scenarios)))
    pool = loadgen.Pool(nworkers)
    try:
        for name in args.systems:
            system = systems.SYSTEMS[name]
            label = system.label
            log('== %s (%s)' % (label, name))
            mine = dict(settings)
            if args.quick:          # smaller sizes for a slow system
                mine.update(system.quick)
                if sizes:
                    mine['capacity_sizes'] = mine['fanout_sizes'] = sizes
                mine.update(overrides)
            ctx = scenarios.Ctx(system, pool, mine, log)
            try:
                for scen in args.scenarios:
                    if (args.quick and args.all_scenarios and
                            system.quick_scenarios is not None and
                            scen not in system.quick_scenarios):
                        continue
                    t = time.time()
                    load0 = report.loadavg1()
                    data = await scenarios.SCENARIOS[scen](ctx)
                    if data is None:        # not measured for this system
                        continue
                    # the machine is shared: the 1-min load average at the
                    # start and end of this scenario, in its table
                    data['load avg 1 min, start -> end'] = '%s -> %s' % (
                        load0, report.loadavg1())
                    results['scenarios'].setdefault(scen, {})[label] = data
                    if label not in results['systems']:
                        results['systems'].append(label)
                        results['kinds'][label] = system.kind
                    log(' %s done in %.1fs' % (scen, time.time() - t))
            except systems.NotAvailable as e:
                note = '%s skipped: %s' % (label, e)
                log('  NOTE: ' + note)
                results['notes'].append(note)
            results['plot'][label] = ctx.plot
            results['kinds'][label] = system.kind
            if system.baseline:
                results['baselines'][label] = \
                    systems.SYSTEMS[system.baseline].label
            report.write(results, args.out, ['python'] + sys.argv,
                         args.name)  # partial
    finally:
        await pool.shutdown()
        import shutil
        shutil.rmtree(memprobe, ignore_errors=True)
    report.write(results, args.out, ['python'] + sys.argv, args.name)
    log('wrote %s' % os.path.join(args.out, args.name + '.md'))


if __name__ == '__main__':
    args = parse()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(args))
