"""benchmarks/previous_default.py: another checkout's default, run on today's protocol."""
import pathlib

import pytest

from filterpy_diffusion.bench import registry, run_one
from benchmark_scripts import load

ROOT = pathlib.Path(__file__).resolve().parents[1]
KW = dict(cycles=12, spinup=2, ref_particles=300)


@pytest.fixture
def script(monkeypatch):
    monkeypatch.setattr(registry, "FILTERS", dict(registry.FILTERS))   # undo the registration
    return load("previous_default")


def test_this_checkout_as_the_previous_one_scores_bit_for_bit_as_dkf(script):
    cls = script.register(ROOT)
    assert cls.__module__.startswith(script.MODULE + ".")     # not today's class under another name
    for problem in ("toy-abs", "l63-z"):
        ours = run_one(problem, "dkf", 20, 7, **KW)
        previous = run_one(problem, script.NAME, 20, 7, **KW)
        assert (previous["rmse"], previous["w2"]) == (ours["rmse"], ours["w2"])


def test_it_refuses_worker_processes_and_non_checkouts(script, tmp_path):
    for workers in ([], ["--workers", "2"], ["--workers=2"],
                    ["--workers", "1", "--scheduler", "tcp://x:1"]):
        with pytest.raises(SystemExit):
            script.main(["--checkout", str(ROOT), "--problems", "toy-abs", *workers])
    with pytest.raises(ValueError, match="checkout of this repository"):
        script.register(tmp_path)


def test_the_json_records_the_scripts_command(script, tmp_path):
    import json
    out = tmp_path / "r.json"
    argv = ["--checkout", str(ROOT), "--problems", "toy-abs", "--filters", script.NAME,
            "--N", "20", "--seeds", "100", "--tuning-seeds", "0", "--workers=1",
            "--cycles", "5", "--ref-particles", "300", "--no-progress", "--out", str(out)]
    assert script.main(argv) == 0
    meta = json.loads(out.read_text())["meta"]
    assert meta["command"] == " ".join(["python benchmarks/previous_default.py", *argv])
