"""Debian packages as data: find a package's files, installed or extracted into a cache.

A package's files are looked up, in this order, under
  1. CACHE/NAME/ (extracted earlier by this module, or by hand: dpkg-deb -x NAME_*.deb CACHE/NAME),
  2. / when the package is installed system-wide (dpkg-query says so),
  3. else `apt-get download NAME` + `dpkg-deb -x` into CACHE/NAME (dependencies are not fetched).
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from nanofm.errors import UserError

DEFAULT_CACHE = Path("~/.cache/nanofm/debian")
VERSION_FILE = ".nanofm-version"


class DebianPackageError(UserError, RuntimeError):
    """A package that could not be found, installed, downloaded or extracted; says what to do."""


def fetch_packages(
    names: Iterable[str], cache_dir: str | Path | None = None, log: Callable[[str], None] = print
) -> dict[str, tuple[Path, str]]:
    """{name: (root, version)} where root/usr/share/... holds the package's files.

    Raises one DebianPackageError naming every package that could not be had, and how to get them.
    """
    cache = Path(cache_dir or DEFAULT_CACHE).expanduser()
    found, errors = {}, []
    for name in sorted(set(names)):
        try:
            found[name] = _package_root(name, cache, log)
        except DebianPackageError as e:
            errors.append(f"  {name}: {e}")
    if errors:
        missing = " ".join(n for n in sorted(set(names)) if n not in found)
        raise DebianPackageError(
            "could not get Debian package(s):\n" + "\n".join(errors) + "\n"
            f"Install them (apt-get update && apt-get install {missing}), or extract them yourself into "
            f"the cache: for each NAME, apt-get download NAME && dpkg-deb -x NAME_*.deb {cache}/NAME"
        )
    return found


def unavailable(name: str, cache_dir: str | Path | None = None) -> str | None:
    """Why package `name` cannot be had (None when it can: cached, installed, or known to apt-get here), checked
    without downloading anything."""
    if (Path(cache_dir or DEFAULT_CACHE).expanduser() / name / "usr").is_dir() or _installed_version(name):
        return None
    missing = [tool for tool in ("apt-get", "apt-cache", "dpkg-deb") if not shutil.which(tool)]
    if missing:
        return f"not installed, and {', '.join(missing)} missing to fetch it"
    res = subprocess.run(["apt-cache", "show", "--no-all-versions", name], capture_output=True, text=True)
    return None if res.returncode == 0 and res.stdout.strip() else "unknown to apt (try apt-get update first)"


def _package_root(name: str, cache: Path, log: Callable[[str], None]) -> tuple[Path, str]:
    extracted = cache / name
    if (extracted / "usr").is_dir():
        return extracted, _cached_version(extracted, name)
    installed = _installed_version(name)
    if installed:
        log(f"{name} {installed}: installed system-wide, using /usr/share")
        return Path("/"), installed
    return extracted, _download_and_extract(name, cache, log)


def _installed_version(name: str) -> str | None:
    if not shutil.which("dpkg-query"):
        return None
    res = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Version}", name], capture_output=True, text=True
    )
    status, _, version = res.stdout.partition(" ")
    return version.strip() if res.returncode == 0 and status.strip() == "ii" else None


def _download_and_extract(name: str, cache: Path, log: Callable[[str], None]) -> str:
    for tool in ("apt-get", "dpkg-deb"):
        if not shutil.which(tool):
            raise DebianPackageError(f"{tool} is not available on this machine")
    if (cache / name).exists():
        raise DebianPackageError(f"{cache / name} exists but holds no usr/ folder: remove it, or extract "
                                 "the package there")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=f".tmp-{name}-") as tmp:
        log(f"{name}: apt-get download into {cache}")
        res = subprocess.run(["apt-get", "download", name], cwd=tmp, capture_output=True, text=True)
        debs = sorted(Path(tmp).glob(f"{name}_*.deb"))
        if res.returncode != 0 or len(debs) != 1:
            detail = (res.stderr or res.stdout).strip().splitlines()
            hint = " (try apt-get update first)" if "Unable to locate" in res.stderr else ""
            raise DebianPackageError(f"apt-get download failed{hint}: {detail[-1] if detail else res.returncode}")
        version = _run(["dpkg-deb", "-f", str(debs[0]), "Version"]).strip()
        partial = Path(tmp) / "root"
        _run(["dpkg-deb", "-x", str(debs[0]), str(partial)])
        (partial / VERSION_FILE).write_text(version + "\n")
        partial.rename(cache / name)  # atomic: a half-extracted package is never mistaken for a cached one
    log(f"{name} {version}: extracted into {cache / name}")
    return version


def _cached_version(root: Path, name: str) -> str:
    """The version recorded at extraction, else the one in the package's changelog, else "unknown"."""
    if (root / VERSION_FILE).is_file():
        return (root / VERSION_FILE).read_text().strip()
    changelog = root / "usr/share/doc" / name / "changelog.Debian.gz"
    if changelog.is_file():
        with gzip.open(changelog, "rt", encoding="utf-8", errors="replace") as f:
            m = re.match(r"\S+ \(([^)]+)\)", f.readline())
        if m:
            return m.group(1)
    return "unknown"


def _run(cmd: list[str]) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise DebianPackageError(f"{' '.join(cmd)} failed: {res.stderr.strip()}")
    return res.stdout
