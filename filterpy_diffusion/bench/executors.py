"""Executors of the benchmark jobs: in-process, local processes, a Dask cluster; progress.

Parallelism
-----------
Jobs (references, tuning runs, reporting runs) are independent apart from
their inputs; the driver submits each as soon as its inputs (reference,
chosen knob) exist. ``--workers 1`` runs them in-process; ``--workers k``
(default ``os.cpu_count()``) in a ``ProcessPoolExecutor`` (forkserver
start method, one BLAS thread per worker unless the environment says
otherwise); ``--scheduler ADDRESS`` on a Dask cluster
(``dask.distributed.Client(ADDRESS)``, imported only then: ``pip install -e
'.[dask]'``; every worker must be able to import this package). Records are
sorted deterministically, so the executor does not change them (apart from
the timing fields).

Two practical notes. A script that calls :func:`run_benchmark` with more
than one worker needs the ``if __name__ == '__main__':`` guard (workers
re-import the main module). And every matrix in a run is small, so a run
wants one BLAS thread: with a multi-threaded OpenBLAS, tiny calls such as
``scipy.linalg.solve_triangular`` on a (3, 100) array can take milliseconds
instead of microseconds. Pool workers get one thread automatically; for
in-process runs (``--workers 1``) whose timings matter, set
``OPENBLAS_NUM_THREADS=1`` (and ``OMP_NUM_THREADS=1``) in the environment.
"""
import concurrent.futures as cf
import multiprocessing
import os
import sys
import time

__all__ = ["make_executor", "Progress"]

class _SerialExecutor:
    """Runs the jobs in-process, one per ``wait_first``, in submission order (``--workers 1``)."""
    description = "in-process"

    def __init__(self):
        self._queue = []

    def submit(self, fn, *args, **kwargs):
        fut = cf.Future()
        self._queue.append((fut, fn, args, kwargs))
        return fut

    def wait_first(self, futures):
        done = {f for f in futures if f.done()}
        if done:
            return done
        # run lazily, one at a time, so that progress is reported as it happens
        fut, fn, args, kwargs = self._queue.pop(0)
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as e:      # surfaces at .result(), like a pool
            fut.set_exception(e)
        return {fut}

    def close(self):
        self._queue.clear()


_BLAS_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class _PoolExecutor:
    """Local processes (``concurrent.futures.ProcessPoolExecutor``)."""

    def __init__(self, workers):
        self.description = f"process pool ({workers} workers)"
        methods = multiprocessing.get_all_start_methods()
        # forkserver: no fork of a parent that has threads (tqdm's monitor);
        # preloading the package (numpy, scipy, filterpy with it) makes each
        # worker start fast. Not this module itself: under `python -m` the
        # workers re-import it as __mp_main__, and runpy warns if it is
        # already in sys.modules.
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if ctx.get_start_method() == "forkserver":
            ctx.set_forkserver_preload(["filterpy_diffusion"])
        # One BLAS thread per worker when there is a worker per core, unless
        # the user chose; set only while the workers start, then restored.
        saved = {v: os.environ.get(v) for v in _BLAS_VARS}
        if all(s is None for s in saved.values()):
            for v in _BLAS_VARS:
                os.environ[v] = "1"
        try:
            self.pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
            # start every worker now, while the environment is set
            list(self.pool.map(_noop, range(workers)))
        finally:
            for v, s in saved.items():
                if s is None:
                    os.environ.pop(v, None)
                else:
                    os.environ[v] = s

    def submit(self, fn, *args, **kwargs):
        return self.pool.submit(fn, *args, **kwargs)

    def wait_first(self, futures):
        return cf.wait(futures, return_when=cf.FIRST_COMPLETED).done

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


def _noop(i):
    return i


class _DaskExecutor:
    """A Dask cluster (``--scheduler ADDRESS``); dask is imported only here."""

    def __init__(self, address):
        try:
            from dask.distributed import Client, wait
        except ImportError:
            raise ImportError(
                "--scheduler needs dask.distributed: pip install -e '.[dask]'") from None
        self.client = Client(address)
        self._wait = wait
        self.description = f"dask ({address})"

    def submit(self, fn, *args, **kwargs):
        # pure=False: two identical jobs are still two runs (and keys never clash)
        return self.client.submit(fn, *args, pure=False, **kwargs)

    def wait_first(self, futures):
        return set(self._wait(list(futures), return_when="FIRST_COMPLETED").done)

    def close(self):
        self.client.close()


def make_executor(workers=None, scheduler=None):
    if scheduler:
        return _DaskExecutor(scheduler)
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    return _SerialExecutor() if workers == 1 else _PoolExecutor(workers)


class Progress:
    """tqdm bar when tqdm is installed (extra ``bench``), plain lines otherwise."""

    def __init__(self, total, enabled=True):
        self.total, self.done, self.enabled = total, 0, enabled
        self.bar = None
        self.t0 = time.perf_counter()
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit="run", file=sys.stderr, dynamic_ncols=True)
            except ImportError:
                pass
        self.every = max(1, total // 50)

    def step(self, label):
        self.done += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(label, refresh=False)
            self.bar.update(1)
        elif self.done % self.every == 0 or self.done == self.total:
            print(f"[{self.done}/{self.total}] {time.perf_counter() - self.t0:7.1f}s {label}",
                  file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()

