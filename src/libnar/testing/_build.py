"""`assert_build_valid`: the one-line build check a flow repository adds to its tests."""

from __future__ import annotations

from pathlib import Path

__all__ = ["assert_build_valid"]


def assert_build_valid(path: str | Path = "flows") -> None:
    """Fail with every build problem of the flow packages at or under `path`.

    Checks what `libnar validate` checks (names, `[sama-build]`, `deploy.json`, the flow's
    parameters) and that each package's deployment plan builds.

    Example:
        ```python
        def test_flows_build():
            assert_build_valid("flows")
        ```

    Raises:
        AssertionError: every problem, one line each, grouped by package.
    """
    __tracebackhide__ = True
    from libnar._build import BuildError, check_packages, make_plan

    results = check_packages(Path(path))
    if not results:
        raise AssertionError(f"no flow package (a folder with a pyproject.toml) at or under {path}")
    lines = []
    for root, found in results:
        if isinstance(found, BuildError):
            lines.append(f"{root}:")
            lines += [f"  {problem}" for problem in found.problems]
        else:
            make_plan(found)
    if lines:
        raise AssertionError("flow packages with build problems:\n" + "\n".join(lines))
