"""A flow repository's CI: which packages changed, and the pipelines that build only those.

`libnar ci-template github|gitlab` prints a pipeline that, on every push (unless the commit
message says `[skip ci]`), validates every flow package and runs each one's tests, and on the
main branch builds and deploys only the packages with a changed file: `libnar packages
--changed-since REF` lists them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Literal

from libnar._build._package import discover_packages

__all__ = ["CiError", "ci_template", "list_packages"]

CiKind = Literal["github", "gitlab"]
_NO_COMMIT = "0" * 40  # what GitHub sends as `before` for a branch's first push


class CiError(ValueError):
    """The changed packages cannot be found; the message says why and what to do."""


def list_packages(path: Path, changed_since: str | None = None) -> list[Path]:
    """The flow packages at or under `path`, or those with a file changed since a commit.

    `changed_since` is a git revision; a missing one (a new branch's all-zero `before`)
    lists every package. A package counts as changed when any file under its folder changed
    in `git diff REV HEAD` (deleted packages are not listed: nothing is left to deploy).

    Raises:
        CiError: git is missing, `path` is not in a git repository, or the revision is unknown.
    """
    packages = discover_packages(path)
    if changed_since is None or changed_since.strip("0") == "":
        return packages
    try:
        done = subprocess.run(  # noqa: S603 - fixed command, no shell
            ["git", "diff", "--name-only", "-z", changed_since, "HEAD", "--", "."],  # noqa: S607
            cwd=path,
            capture_output=True,
            text=True,
            check=False,
        )
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],  # noqa: S607
            cwd=path,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        raise CiError("git is not installed: --changed-since needs it") from None
    if done.returncode != 0 or top.returncode != 0:
        reason = (done.stderr or top.stderr).strip().splitlines()
        raise CiError(
            f"--changed-since {changed_since}: git cannot compare it with HEAD in {path}"
            f" ({reason[0] if reason else 'unknown error'}); fetch the whole history"
            " (fetch-depth: 0 / GIT_DEPTH: 0) or give a commit that exists"
        )
    root = Path(top.stdout.strip())
    changed = [(root / name).resolve() for name in done.stdout.split("\0") if name]
    return [
        package
        for package in packages
        if any(file.is_relative_to(package.resolve()) for file in changed)
    ]


_SCRIPT_CHECK = """\
libnar validate flows
for package in $(libnar packages flows); do
  pip install "$package"
  # pytest exits 5 when a package has no tests: that is not a failure here.
  (cd "$package" && python -m pytest -q) || [ $? -eq 5 ]
done"""

_SCRIPT_DEPLOY = """\
for package in $(libnar packages flows --changed-since "{before}"); do
  pip install "$package"
  libnar build "$package"
  # Builds and pushes the package's image once, then applies its deployments.
  (cd "$package" && prefect --no-prompt deploy --all)
done"""

_GITHUB = """\
# NPS flows: validate and test every flow package on every push; on main, build, push and
# deploy the packages that changed. Written by `libnar ci-template github`.
# Put "[skip ci]" in a commit message to skip it (GitHub skips such pushes by itself too).
# Settings: secrets PIP_INDEX_URL (where libnar comes from), PREFECT_API_URL, PREFECT_API_KEY,
# REGISTRY_USER, REGISTRY_PASSWORD; variable LIBNAR_IMAGE_REGISTRY (e.g. ghcr.io/acme/nps).
name: nps-flows
on:
  push:
    branches: ["**"]
env:
  PIP_INDEX_URL: ${{{{ secrets.PIP_INDEX_URL }}}}
  LIBNAR_IMAGE_REGISTRY: ${{{{ vars.LIBNAR_IMAGE_REGISTRY }}}}
jobs:
  check:
    if: ${{{{ !contains(github.event.head_commit.message, '[skip ci]') }}}}
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install libnar
        run: pip install "libnar[docker]>={version}" pytest respx
      - name: Validate and test every flow package
        run: |
{check}
  deploy:
    needs: check
    if: ${{{{ github.ref == 'refs/heads/main' && !contains(github.event.head_commit.message, '[skip ci]') }}}}
    runs-on: ubuntu-latest
    env:
      PREFECT_API_URL: ${{{{ secrets.PREFECT_API_URL }}}}
      PREFECT_API_KEY: ${{{{ secrets.PREFECT_API_KEY }}}}
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install libnar
        run: pip install "libnar[docker]>={version}"
      - name: Log in to the image registry
        run: echo "${{{{ secrets.REGISTRY_PASSWORD }}}}" | docker login "${{LIBNAR_IMAGE_REGISTRY%%/*}}" -u "${{{{ secrets.REGISTRY_USER }}}}" --password-stdin
      - name: Build, push and deploy the changed flow packages
        run: |
{deploy}
"""

_GITLAB = """\
# NPS flows: validate and test every flow package on every push; on main, build, push and
# deploy the packages that changed. Written by `libnar ci-template gitlab`.
# Put "[skip ci]" in a commit message to skip it (GitLab skips such pushes by itself too).
# CI/CD variables: PIP_INDEX_URL (where libnar comes from), PREFECT_API_URL, PREFECT_API_KEY,
# LIBNAR_IMAGE_REGISTRY (e.g. registry.gitlab.com/acme/nps); the job logs in to GitLab's
# registry with its own token.
workflow:
  rules:
    - if: $CI_COMMIT_MESSAGE =~ /\\[skip ci\\]/
      when: never
    - if: $CI_PIPELINE_SOURCE == "push"
stages: [check, deploy]
check:
  stage: check
  image: python:3.11
  script:
    - pip install "libnar[docker]>={version}" pytest respx
    - |
{check}
deploy:
  stage: deploy
  image: python:3.11
  services: [docker:dind]
  variables:
    DOCKER_HOST: tcp://docker:2375
    DOCKER_TLS_CERTDIR: ""
    GIT_DEPTH: "0"
  rules:
    - if: $CI_COMMIT_BRANCH == "main"
  script:
    - pip install "libnar[docker]>={version}"
    - echo "$CI_REGISTRY_PASSWORD" | docker login "$CI_REGISTRY" -u "$CI_REGISTRY_USER" --password-stdin
    - |
{deploy}
"""


def _indent(script: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in script.splitlines())


def ci_template(kind: CiKind) -> str:
    """The pipeline of a flow repository for GitHub Actions or GitLab CI, as YAML text."""
    from libnar import __version__

    if kind == "github":
        return _GITHUB.format(
            version=__version__,
            check=_indent(_SCRIPT_CHECK, 10),
            deploy=_indent(_SCRIPT_DEPLOY.format(before="${{ github.event.before }}"), 10),
        )
    return _GITLAB.format(
        version=__version__,
        check=_indent(_SCRIPT_CHECK, 6),
        deploy=_indent(_SCRIPT_DEPLOY.format(before="$CI_COMMIT_BEFORE_SHA"), 6),
    )
