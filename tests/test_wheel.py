"""nanofm installed from a wheel, outside the repository: the shipped configs come with it, so that
`nanofm train copy-tiny` works for a pip user (it used to need the repository's configs/ folder)."""

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_wheel_installed_elsewhere_trains_a_shipped_config(tmp_path):
    dist, venv, work, source = tmp_path / "dist", tmp_path / "venv", tmp_path / "elsewhere", tmp_path / "source"
    # built from a copy of the sources: setuptools would reuse the files of an earlier build in ROOT/build (modules
    # since moved or deleted), and the wheel would not be the repository's
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(source)], check=True, capture_output=True)
    wheel = next(dist.glob("nanofm-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # torch and the other dependencies from this environment (a plain path: its editable nanofm is not seen)
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", "-q",
                    str(wheel)], check=True, capture_output=True)
    work.mkdir()
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import nanofm; print(nanofm.__file__)"], cwd=work,
                           check=True, capture_output=True, text=True).stdout
    assert where.startswith(str(site))  # the installed copy, not the repository's
    done = subprocess.run([str(venv / "bin" / "nanofm"), "train", "copy-tiny", "train.steps=5", "train.eval_every=5",
                           "--out", "run", "--no-progress"], cwd=work, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "done: 5 steps" in done.stdout and (work / "run" / "README.md").is_file()
