"""filterpy_diffusion.dapper is optional: the package never imports DAPPER, and says how to get it."""
import os
import subprocess
import sys


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code):
    # A fresh interpreter, so that no other test has imported DAPPER already.
    return subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {ROOT!r}); {code}"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_importing_the_package_does_not_import_dapper():
    out = _python("import filterpy_diffusion, filterpy_diffusion.benchmark, "
                  "filterpy_diffusion.localization; print('dapper' in sys.modules)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_missing_dapper_gives_an_import_error_with_the_install_command():
    # sys.modules['dapper'] = None makes `import dapper` fail as if it were not installed.
    out = _python("sys.modules['dapper'] = None\n"
                  "try:\n    import filterpy_diffusion.dapper\n"
                  "except ImportError as e:\n    print('ImportError:', e)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ImportError:")
    assert "pip install filterpy-diffusion[dapper]" in out.stdout
