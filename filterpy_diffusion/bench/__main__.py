"""``python -m filterpy_diffusion.bench``: the benchmark's command line (:mod:`.cli`)."""
import sys

if __name__ == "__main__":
    # The package's main, not a copy in __main__: jobs sent to worker processes
    # (and Dask) are pickled by reference as filterpy_diffusion.bench.runner.run_one.
    from filterpy_diffusion.bench.cli import main
    sys.exit(main())
