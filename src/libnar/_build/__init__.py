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
from libnar._build._image import (
    RecipeError,
    ReplayResult,
    check_recipe,
    image_recipe,
    image_status,
    recipe_path,
    replay_recipe,
    write_recipe,
)
from libnar._build._package import FlowPackage, check_package, check_packages, discover_packages
from libnar._build._plan import (
    DeploymentPlan,
    PackagePlan,
    image_steps,
    local_plan,
    make_plan,
    plan_to_json,
    plan_to_prefect_yaml,
)
from libnar._build._pools import LOCAL_POOL, POOL_KINDS, base_job_template
from libnar._build._scaffold import ScaffoldError, package_name, write_flow_package

__all__ = [
    "LOCAL_POOL",
    "POOL_KINDS",
    "BuildError",
    "BuildProblem",
    "DeployError",
    "DeploymentChange",
    "DeploymentPlan",
    "DeploymentSpec",
    "FlowPackage",
    "PackagePlan",
    "RecipeError",
    "ReplayResult",
    "SamaBuild",
    "ScaffoldError",
    "apply_plan",
    "apply_plan_sync",
    "base_job_template",
    "check_package",
    "check_packages",
    "check_recipe",
    "discover_packages",
    "export_deploy_json",
    "export_deploy_json_sync",
    "image_recipe",
    "image_status",
    "image_steps",
    "local_plan",
    "make_plan",
    "package_name",
    "plan_to_json",
    "plan_to_prefect_yaml",
    "recipe_path",
    "replay_recipe",
    "write_flow_package",
    "write_recipe",
]
