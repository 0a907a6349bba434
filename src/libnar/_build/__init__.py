"""The build: `[sama-build]` and `deploy.json` -> a checked deployment plan -> Prefect.

Internal (no promise of stability): the `libnar` command, `libnar.testing.assert_build_valid`
and the gateway's `/deploy-json` call these.
"""

from __future__ import annotations

from libnar._build._apply import (
    DeployError,
    DeploymentChange,
    apply_plan,
    apply_plan_sync,
    export_deploy_json,
    export_deploy_json_sync,
)
from libnar._build._config import SamaBuild
from libnar._build._deploy_json import DeploymentSpec
from libnar._build._errors import BuildError, BuildProblem
from libnar._build._package import FlowPackage, check_package, check_packages, discover_packages
from libnar._build._scaffold import ScaffoldError, package_name, write_flow_package
from libnar._build._plan import (
    DeploymentPlan,
    PackagePlan,
    make_plan,
    plan_to_json,
    plan_to_prefect_yaml,
)

__all__ = [
    "BuildError",
    "BuildProblem",
    "DeployError",
    "DeploymentChange",
    "DeploymentPlan",
    "DeploymentSpec",
    "FlowPackage",
    "PackagePlan",
    "SamaBuild",
    "ScaffoldError",
    "apply_plan",
    "apply_plan_sync",
    "check_package",
    "check_packages",
    "discover_packages",
    "export_deploy_json",
    "export_deploy_json_sync",
    "make_plan",
    "package_name",
    "plan_to_json",
    "plan_to_prefect_yaml",
    "write_flow_package",
]
