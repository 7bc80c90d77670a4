"""Run schedules and check them: one (`runSchedule`, as the short test
does) or as many as fit in a time (`main`, ``make soak``).

    python -m zorg.live.tests.faults --seconds 600 [--seed 1] [--length 20]

prints a line per schedule, and at the end the schedules run, the faults
injected by kind and the violations. A schedule with a violation prints
its plan, the violations with an excerpt of the history, and the command
that runs it again; its history is kept in the output folder.
"""

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import traceback

from zorg.live.tests.faults.checker import check
from zorg.live.tests.faults.driver import BARRIER, Run
from zorg.live.tests.faults.schedule import Plan


class Outcome:

    def __init__(self, plan, run, violations, seconds):
        self.plan, self.run = plan, run
        self.violations, self.seconds = violations, seconds

    def summary(self):
        ops = self.run.history.ops
        inputs = [op for op in ops if op.kind == 'input']
        acked = {op.result['id'] for op in inputs
                 if op.result.get('status') == 200}
        faults = ', '.join('%s %d' % item for item in
                           sorted(self.run.counts().items()) if item[1])
        return ('seed %s: %d processes, %d ops, %d inputs (%d acked, %d '
                'stored), %d pages; faults: %s; %d violations (%.0f s)' % (
                    self.plan.seed, self.plan.processes, len(ops),
                    len({op.result['id'] for op in inputs}), len(acked),
                    len(self.run.stored or ()),
                    len({op.page for op in ops if op.kind == 'render'}),
                    faults or 'none', len(self.violations), self.seconds))

    def faultsDuring(self, violation):
        """The faults that overlap the posts a violation is about (or the
        ops it names): where to look first."""
        ops = [op for op in violation.ops if op.kind == 'input'] or \
            violation.ops
        if not ops:
            return []
        start = min(op.start for op in ops) - 0.5
        end = max(op.end if op.end is not None else op.start
                  for op in ops) + 0.5
        return ['%s%s %.2f-%.2f s' % (
            op.result['fault'], '' if op.process is None else
            ' (process %d)' % op.process, op.start, op.end or op.start)
            for op in self.run.history.of('fault')
            if op.start <= end and (op.end or op.start) >= start]

    def report(self):
        lines = [self.plan.describe(), '']
        for v in self.violations:
            lines.append(v.describe())
            during = self.faultsDuring(v)
            if during:
                lines.append('    faults meanwhile: %s' % ', '.join(during))
        lines.append('')
        lines.append('stored: %s' % ' '.join(self.run.stored or ()))
        lines.append('run it again: %s' % self.plan.command())
        return '\n'.join(lines)


def runSchedule(plan, directory):
    """Run `plan` with its processes in `directory`; check its history."""
    started = time.monotonic()
    run = Run(plan, directory)
    asyncio.run(run.go())
    violations = check(run.history, run.stored, BARRIER)
    return Outcome(plan, run, violations, time.monotonic() - started)


def keep(outcome, folder):
    """Write the history, the stored messages and the report of a failing
    schedule (`check(History.loads(history), stored)` checks it again)."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, 'history.json'), 'w') as f:
        f.write(outcome.run.history.dumps())
    with open(os.path.join(folder, 'stored.json'), 'w') as f:
        json.dump(outcome.run.stored, f)
    with open(os.path.join(folder, 'report.txt'), 'w') as f:
        f.write(outcome.report())


def parse(argv):
    parser = argparse.ArgumentParser(
        prog='python -m zorg.live.tests.faults',
        description='Run seeded fault schedules against live processes on '
                    'one ZEO database and one redis-server, and check the '
                    'delivery and exactly-once promises on their histories.')
    parser.add_argument('--seconds', type=float, default=60,
                        help='run schedules for this long in all (default '
                             '60); at least one runs')
    parser.add_argument('--seed', type=int, default=None,
                        help='the first schedule\'s seed (default: from '
                             'the clock); the next ones count up')
    parser.add_argument('--length', type=float, default=20,
                        help='seconds of clients and faults per schedule '
                             '(default 20)')
    parser.add_argument('--processes', type=int, default=None,
                        help='live processes (default: 2 or 3, by seed)')
    parser.add_argument('--clients', type=int, default=4)
    parser.add_argument('--faults', default=None,
                        help='the kinds of fault to draw from, comma-'
                        'separated (default: all)')
    parser.add_argument('--schedules', type=int, default=None,
                        help='stop after this many schedules')
    parser.add_argument('--out', default=None,
                        help='folder for the histories of failing '
                             'schedules (default var/faults)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    seed = args.seed if args.seed is not None else int(time.time()) % 100000
    out = args.out or os.path.join('var', 'faults')
    started = time.monotonic()
    outcomes, failed, errors = [], [], []
    while True:
        processes = args.processes or 2 + seed % 2
        plan = Plan(seed, args.length, processes, args.clients,
                    kinds=args.faults.split(',') if args.faults else None)
        directory = tempfile.mkdtemp(prefix='zorg-faults-%s-' % seed)
        try:
            outcome = runSchedule(plan, directory)
        except Exception:
            # The harness failed (e.g. a process did not start): said,
            # not counted as a schedule.
            traceback.print_exc()
            errors.append(seed)
            outcome = None
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        seed += 1
        if outcome is None:
            if len(errors) > 3 or time.monotonic() - started > args.seconds:
                break
            continue
        outcomes.append(outcome)
        print(outcome.summary(), flush=True)
        if outcome.violations:
            failed.append(outcome)
            folder = os.path.join(out, 'seed-%s' % plan.seed)
            keep(outcome, folder)
            print(outcome.report(), flush=True)
            print('history: %s' % os.path.join(folder, 'history.json'),
                  flush=True)
        elapsed = time.monotonic() - started
        if args.schedules and len(outcomes) >= args.schedules:
            break
        average = elapsed / len(outcomes)
        if elapsed + average > args.seconds:
            break
    totals = {}
    for outcome in outcomes:
        for kind, count in outcome.run.counts().items():
            totals[kind] = totals.get(kind, 0) + count
    violations = {}
    for outcome in failed:
        for v in outcome.violations:
            violations.setdefault(v.invariant, []).append(outcome.plan.seed)
    print('\n%d schedules in %.0f s; faults injected: %s; violations: %s'
          % (len(outcomes), time.monotonic() - started,
             ', '.join('%s %d' % item for item in sorted(totals.items())),
             sum(len(o.violations) for o in failed)))
    if errors:
        print('  schedules that could not run (see above): seeds %s'
              % errors)
    for invariant, seeds in sorted(violations.items()):
        print('  invariant %s: seeds %s' % (invariant,
                                            sorted(set(seeds))))
    for outcome in failed:
        print('  again: %s' % outcome.plan.command())
    return 1 if failed or errors else 0
