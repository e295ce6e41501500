"""The installed Dagster family must be one release line, and dagster_postgres must import.

Run first by `make check` and by the test session: a drifted install (a library of another line,
as when a resolver once picked dagster-postgres 0.11.14 for dagster 1.13) stops everything with
one message saying what to run, before any test fails in a confusing way.
"""

from __future__ import annotations

import sys
from importlib import metadata

# Core packages carry dagster's own version (1.13.N); libraries carry 0.(13 + 16).N.
CORE = ("dagster", "dagster-pipes", "dagster-shared", "dagster-webserver", "dagster-graphql")
LIBRARIES = ("dagster-postgres",)
LIBRARY_MINOR_OFFSET = 16
FIX = "run `make reinstall` (installs exactly uv.lock), or `make lock` to refresh the lock"


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def release_line_problems() -> list[str]:
    """Each package of the family that is missing or not of dagster's release line."""
    core = installed("dagster")
    if core is None:
        return ["dagster is not installed"]
    major, minor, patch = core.split(".")[:3]
    library = f"0.{int(minor) + LIBRARY_MINOR_OFFSET}.{patch}"
    problems = []
    for name in CORE + LIBRARIES:
        want = library if name in LIBRARIES else core
        have = installed(name)
        if have is None:
            problems.append(f"{name} is not installed (want {want})")
        elif have != want:
            problems.append(f"{name} {have} is not of dagster {core}'s release line (want {want})")
    return problems


def import_problem() -> str | None:
    try:
        import dagster_postgres  # noqa: F401
    except Exception as error:  # any failure here means every Dagster run would fail the same way
        return f"import dagster_postgres fails: {type(error).__name__}: {error}"
    return None


def install_problems() -> list[str]:
    problems = release_line_problems()
    if not problems:  # importing a mismatched library can itself crash; name the versions first
        problem = import_problem()
        if problem:
            problems.append(problem)
    return problems


def message(problems: list[str]) -> str:
    return "broken install: " + "; ".join(problems) + f". Fix: {FIX}."


def main() -> int:
    problems = install_problems()
    if problems:
        print(message(problems), file=sys.stderr)
        return 1
    print(
        f"install ok: dagster {installed('dagster')}, dagster-postgres "
        f"{installed('dagster-postgres')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
