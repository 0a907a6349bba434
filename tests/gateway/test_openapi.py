"""Property-based: no request generated from the gateway's OpenAPI schema gets a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from libnar._gateway import mint_token

from .conftest import ADMIN_KEY, DPP_KEY, SECRET, gateway_settings, serve_in_thread

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway_url(
    deployments: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    outbox = tmp_path_factory.mktemp("openapi") / "outbox"
    with serve_in_thread(gateway_settings(outbox)) as url:
        yield url


CREDENTIALS = {
    "/webhook-event": {"x-auth-token": mint_token(SECRET, "gw_hook_ptp")},
    "/dpp-event": {"Authorization": f"Bearer {DPP_KEY}"},
}


CALLS: list[int] = []


def check_operation(operation: Any, gateway_url: str) -> None:
    """Send generated requests to one operation, without and with valid credentials."""
    credentials = CREDENTIALS.get(operation.path, {"Authorization": f"Bearer {ADMIN_KEY}"})

    @given(case=operation.as_strategy())
    @settings(
        max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def no_server_error(case: Any) -> None:
        for headers in (case.headers or {}, {**(case.headers or {}), **credentials}):
            response = case.call(base_url=gateway_url, headers=headers)
            CALLS.append(response.status_code)
            assert response.status_code < 500, (case.path, response.status_code, response.text)
            case.validate_response(response, checks=[not_a_server_error])

    no_server_error()


def test_no_generated_request_gets_a_server_error(gateway_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/webhook-event", "/dpp-event", "/create-token"}
    for operation in operations:
        check_operation(operation, gateway_url)
    assert len(CALLS) > 50
    assert 200 in CALLS
    assert 401 in CALLS
