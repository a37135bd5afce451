#!/usr/bin/python3
"""asyncuv's main job: a real asyncio workload, on asyncuv and the stock loop.

The workload is an in-process job pipeline of the kind an asyncio service
runs: producers feed bounded asyncio.Queues, worker tasks take jobs under a
Semaphore, each job awaits a few sub-steps (futures completed by callbacks,
sleep(0) hand-offs, short timers under asyncio.timeout), results are
gathered and checked.  Every loop runs the same jobs and must produce the
same checksum; the figures printed are jobs per second of wall time and
jobs per second of the process's CPU time (medians of the repetitions,
loops interleaved so machine noise hits all of them alike).  On a busy
machine the CPU-time figures are the steadier ones: the workload is one
thread, and CPU time leaves out the time other processes held the CPU.

    /usr/bin/python3 bench/workload.py [--jobs N] [--repeat R] [--json FILE]

It grows with the loop: network and process stages join it as asyncuv
implements them.
"""

import argparse
import asyncio
import json
import statistics
import sys
import time

import machine


async def _job(loop, n, sem):
    async with sem:
        # A future completed by a plain callback (an I/O completion's shape).
        fut = loop.create_future()
        loop.call_soon(fut.set_result, n)
        value = await fut
        # A hand-off to other tasks, then a short timer under a deadline.
        await asyncio.sleep(0)
        # 1 ms, not less: uvloop truncates delays below 1 ms to zero (there
        # asyncio.sleep(0.0005) returns after ~6 us, on asyncio and asyncuv
        # after ~1.1 ms), and the loops would not run the same job.
        async with asyncio.timeout(1.0):
            if n % 50 == 0:
                await asyncio.sleep(0.001)
        return value * 2 + 1


async def _worker(loop, queue, results, sem):
    while True:
        n = await queue.get()
        try:
            results.append(await _job(loop, n, sem))
        finally:
            queue.task_done()


async def pipeline(njobs, nworkers=64, nproducers=4):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue(maxsize=256)
    sem = asyncio.Semaphore(32)
    results = []
    workers = [asyncio.create_task(_worker(loop, queue, results, sem))
               for _ in range(nworkers)]

    async def produce(start):
        for n in range(start, njobs, nproducers):
            await queue.put(n)

    await asyncio.gather(*(produce(i) for i in range(nproducers)))
    await queue.join()
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    return len(results), sum(results)


def _loop_factories():
    factories = {'asyncio': asyncio.new_event_loop}
    try:
        import uvloop
        factories['uvloop'] = uvloop.new_event_loop
    except ImportError:
        pass
    import asyncuv
    factories['asyncuv'] = asyncuv.new_event_loop
    return factories


def run_once(factory, njobs):
    loop = factory()
    try:
        t0 = time.perf_counter()
        c0 = time.process_time()
        count, checksum = loop.run_until_complete(pipeline(njobs))
        cpu = time.process_time() - c0
        dt = time.perf_counter() - t0
    finally:
        loop.close()
    return dt, cpu, count, checksum


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--jobs', type=int, default=20000)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--json', metavar='FILE',
                        help='also write the figures to FILE')
    args = parser.parse_args(argv)

    factories = _loop_factories()
    expected = (args.jobs, sum(2 * n + 1 for n in range(args.jobs)))
    times = {name: [] for name in factories}
    cpus = {name: [] for name in factories}
    for _ in range(args.repeat):
        for name, factory in factories.items():
            dt, cpu, count, checksum = run_once(factory, args.jobs)
            if (count, checksum) != expected:
                sys.exit(f'{name}: wrong result {(count, checksum)}, '
                         f'expected {expected}')
            times[name].append(dt)
            cpus[name].append(cpu)

    rate = {name: args.jobs / statistics.median(ts) for name, ts in times.items()}
    cpu_rate = {name: args.jobs / statistics.median(cs)
                for name, cs in cpus.items()}
    print(f'job pipeline: {args.jobs} jobs, median of {args.repeat} runs '
          f'(Python {sys.version.split()[0]})')
    print(f'{"loop":<10}{"jobs/s":>12}{"vs asyncio":>12}'
          f'{"jobs/CPU-s":>14}{"vs asyncio":>12}')
    for name, r in rate.items():
        c = cpu_rate[name]
        print(f'{name:<10}{r:>12,.0f}{r / rate["asyncio"]:>11.2f}x'
              f'{c:>14,.0f}{c / cpu_rate["asyncio"]:>11.2f}x')
    if 'uvloop' in rate:
        print(f'asyncuv / uvloop: {rate["asyncuv"] / rate["uvloop"]:.2f}x '
              f'(wall), {cpu_rate["asyncuv"] / cpu_rate["uvloop"]:.2f}x (CPU)')
    if args.json:
        versions = {'python': sys.version.split()[0]}
        for name in factories:
            mod = sys.modules.get(name)
            versions[name] = getattr(mod, '__version__', None)
        with open(args.json, 'w') as f:
            json.dump({'benchmark': 'workload', 'jobs': args.jobs,
                       'time': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
                       'machine': machine.describe(),
                       'repeat': args.repeat, 'versions': versions,
                       'wall_s': times, 'cpu_s': cpus,
                       'jobs_per_s': rate, 'jobs_per_cpu_s': cpu_rate},
                      f, indent=1)


if __name__ == '__main__':
    main()
