"""The fake SamaHub answers like SamaHub; the factories build realistic payloads."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import httpx
import pytest

from libnar import DppEvent, Task, WebhookEvent, parse_event
from libnar.testing import (
    FakeSamaHub,
    make_dpp_event,
    make_task,
    make_webhook_event,
)

API = "https://sama.test/v2"


def api(fake: FakeSamaHub, method: str, path: str, **kwargs: Any) -> httpx.Response:
    params = {"access_key": fake.api_key, **kwargs.pop("params", {})}
    return httpx.request(method, f"{fake.api_url}{path}", params=params, **kwargs)


def test_fixture_points_the_settings_at_the_fake(fake_samahub: FakeSamaHub) -> None:
    assert os.environ["SAMA_API_URL"] == fake_samahub.api_url == API
    assert os.environ["SAMA_DPP_URL"] == fake_samahub.dpp_url == "https://dpp.sama.test"
    assert os.environ["SAMA_API_KEY"] == fake_samahub.api_key
    assert os.environ["SAMA_DPP_KEY"] == fake_samahub.dpp_key


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "body"),
    [
        pytest.param(
            "GET",
            "/projects/10.json",
            {"params": {"access_key": "wrong"}},
            401,
            {
                "errors": [
                    {
                        "type": 401,
                        "message": "Unauthorized: invalid access_key or API access not enabled",
                    }
                ]
            },
            id="bad-key",
        ),
        pytest.param(
            "GET",
            "/projects/99.json",
            {},
            404,
            {"errors": [{"type": 404, "message": "Project not found"}]},
            id="unknown-project",
        ),
        pytest.param(
            "GET",
            "/projects/10/tasks/nope.json",
            {},
            404,
            {"errors": [{"type": 404, "message": "Task not found"}]},
            id="unknown-task",
        ),
        pytest.param(
            "GET",
            "/projects/10/nothing.json",
            {},
            404,
            {
                "errors": [
                    {"type": 404, "message": "No route matches GET /projects/10/nothing.json"}
                ]
            },
            id="unknown-route",
        ),
        pytest.param(
            "DELETE",
            "/projects/10.json",
            {},
            405,
            {"errors": [{"type": 405, "message": "Method DELETE not allowed; use GET"}]},
            id="wrong-method",
        ),
        pytest.param(
            "POST",
            "/projects/10/batches.json",
            {"json": {"tasks": [{"data": "x"}]}},
            400,
            {"errors": [{"type": 400, "message": "tasks[0].data must be an object"}]},
            id="bad-batch-body",
        ),
        pytest.param(
            "POST",
            "/projects/10/batches.json",
            {"json": {"tasks": [{"data": {}}] * 1001}},
            400,
            {"errors": [{"type": 400, "message": "A batch holds at most 1000 tasks, got 1001"}]},
            id="batch-too-big",
        ),
        pytest.param(
            "GET",
            "/projects/10/tasks.json",
            {"params": {"page_size": "5000"}},
            400,
            {
                "errors": [
                    {
                        "type": 400,
                        "message": "page_size must be an integer from 1 to 1000, got '5000'",
                    }
                ]
            },
            id="page-size-too-big",
        ),
        pytest.param(
            "GET",
            "/projects/10/tasks/delivered.json",
            {"params": {"from": "yesterday"}},
            400,
            {
                "errors": [
                    {"type": 400, "message": "from must be an RFC 3339 timestamp, got 'yesterday'"}
                ]
            },
            id="bad-time",
        ),
    ],
)
def test_fake_answers_with_samahubs_error_shapes(
    fake_samahub: FakeSamaHub,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    body: dict[str, Any],
) -> None:
    fake_samahub.add_project(10)
    response = api(fake_samahub, method, path, **kwargs)
    assert (response.status_code, response.json()) == (status, body)


@pytest.mark.parametrize(
    ("headers", "body", "status", "message"),
    [
        pytest.param({}, {"round": 1, "data": {}, "answers": {}}, 401, "Unauthorized", id="no-key"),
        pytest.param(
            {"Authorization": "Bearer wrong"},
            {"round": 1, "data": {}, "answers": {}},
            401,
            "Unauthorized",
            id="wrong-key",
        ),
        pytest.param(
            None,
            {"round": 1, "data": {}, "answers": {}, "state": "x"},
            400,
            "Invalid DPP result: state: Extra inputs are not permitted",
            id="extra-field",
        ),
        pytest.param(
            None,
            {"data": {}, "answers": {}},
            400,
            "Invalid DPP result: round: Field required",
            id="no-round",
        ),
    ],
)
def test_fake_dpp_endpoint_checks_the_bearer_key_and_the_body(
    fake_samahub: FakeSamaHub,
    headers: dict[str, str] | None,
    body: dict[str, Any],
    status: int,
    message: str,
) -> None:
    task = fake_samahub.add_task(make_task())
    if headers is None:
        headers = {"Authorization": f"Bearer {fake_samahub.dpp_key}"}
    url = f"{fake_samahub.dpp_url}/api/v1/projects/10/tasks/{task.id}/post_processed"
    response = httpx.put(url, json=body, headers=headers)
    assert (response.status_code, response.json()) == (status, {"message": message})
    assert fake_samahub.dpp_results == {}


def test_fake_refuses_requests_to_the_real_samahub(fake_samahub: FakeSamaHub) -> None:
    response = httpx.get("https://api.sama.com/v2/projects/10.json")
    assert response.status_code == 421
    assert "refuses requests to the real SamaHub" in response.json()["errors"][0]["message"]


def test_faults_act_after_n_calls_per_route(fake_samahub: FakeSamaHub) -> None:
    fake_samahub.add_project(10)
    fake_samahub.fail(502, route="project", after=2, times=2)
    statuses = [api(fake_samahub, "GET", "/projects/10.json").status_code for _ in range(5)]
    assert statuses == [200, 200, 502, 502, 200]
    assert api(fake_samahub, "GET", "/projects/10/stats.json").status_code == 200


def test_global_faults_count_every_route(fake_samahub: FakeSamaHub) -> None:
    fake_samahub.add_project(10)
    fake_samahub.drop_connection(after=1)
    assert api(fake_samahub, "GET", "/projects/10.json").status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        api(fake_samahub, "GET", "/projects/10/stats.json")
    assert api(fake_samahub, "GET", "/projects/10/stats.json").status_code == 200


def test_clear_faults_removes_every_pending_fault(fake_samahub: FakeSamaHub) -> None:
    fake_samahub.add_project(10)
    fake_samahub.fail(503, times=5)
    fake_samahub.drop_connection(route="stats", after=0)
    assert api(fake_samahub, "GET", "/projects/10.json").status_code == 503
    fake_samahub.clear_faults()
    assert api(fake_samahub, "GET", "/projects/10.json").status_code == 200
    assert api(fake_samahub, "GET", "/projects/10/stats.json").status_code == 200


def test_lag_listing_lists_a_new_batch_only_after_some_listings() -> None:
    from libnar.testing import serve_fake_samahub

    with serve_fake_samahub() as fake:
        fake.add_project(10)
        old = api(fake, "POST", "/projects/10/batches.json", json={"tasks": [{"data": {}}]})
        fake.lag_listing(listings=2)
        body = {"tasks": [{"data": {"n": "1"}}], "client_batch_id": "cb"}
        new = api(fake, "POST", "/projects/10/batches.json", json=body)
        listed = [
            {
                task["batch_id"]
                for task in api(fake, "GET", "/projects/10/tasks.json").json()["tasks"]
            }
            for _ in range(3)
        ]
        fake.clear_faults()
        late = api(fake, "POST", "/projects/10/batches.json", json=body)
        now = api(fake, "GET", "/projects/10/tasks.json").json()["tasks"]
    old_id, new_id = old.json()["batch_id"], new.json()["batch_id"]
    assert new.status_code == 200
    assert listed == [{old_id}, {old_id}, {old_id, new_id}]
    assert late.json()["batch_id"] in {task["batch_id"] for task in now}


def test_lag_listing_needs_a_count_of_0_or_more(fake_samahub: FakeSamaHub) -> None:
    with pytest.raises(ValueError, match="listings must be 0 or more, got -1"):
        fake_samahub.lag_listing(-1)


def test_rate_limit_sends_retry_after(fake_samahub: FakeSamaHub) -> None:
    fake_samahub.add_project(10)
    fake_samahub.rate_limit(retry_after=30)
    response = api(fake_samahub, "GET", "/projects/10.json")
    assert (response.status_code, response.headers["Retry-After"]) == (429, "30")


@pytest.mark.parametrize("connect", [True, False], ids=["connect-timeout", "read-timeout"])
def test_time_out_raises_the_timeout(fake_samahub: FakeSamaHub, connect: bool) -> None:
    fake_samahub.add_project(10)
    fake_samahub.time_out(connect=connect)
    with pytest.raises(httpx.ConnectTimeout if connect else httpx.ReadTimeout):
        api(fake_samahub, "GET", "/projects/10.json")


def test_unknown_route_names_are_refused(fake_samahub: FakeSamaHub) -> None:
    with pytest.raises(ValueError, match="unknown route 'taks'; expected one of project, "):
        fake_samahub.fail(route="taks")


def test_add_task_accepts_a_task_or_a_dict(fake_samahub: FakeSamaHub) -> None:
    from_dict = fake_samahub.add_task({"id": "a" * 24, "project_id": 3, "state": "new"})
    from_task = fake_samahub.add_task(make_task(), project_id=3)
    assert isinstance(from_dict, Task)
    assert set(fake_samahub.tasks["3"]) == {from_dict.id, from_task.id}


def test_add_event_adds_the_task_without_its_round(fake_samahub: FakeSamaHub) -> None:
    event = make_dpp_event(round=3)
    task = fake_samahub.add_event(event)
    assert (task.id, task.round) == (event.task.id, None)


def test_fake_works_without_the_fixture() -> None:
    with FakeSamaHub(api_url="https://other.test/api/v2", api_key="k") as fake:
        fake.add_project(4)
        response = httpx.get("https://other.test/api/v2/projects/4.json?access_key=k")
    assert response.json()["id"] == 4


# --- factories --------------------------------------------------------------------------------


def test_make_task_is_a_realistic_delivered_task() -> None:
    task = make_task()
    assert re.fullmatch(r"[0-9a-f]{24}", task.id)
    assert task.state == "delivered"
    assert task.delivered_at is not None
    assert task.created_at is not None
    assert task.delivered_at > task.created_at
    groups = task.answers["image"]["layers"]["vector_tagging"] if task.answers else []
    assert [s["type"] for group in groups for s in group["shapes"]] == ["rectangle", "rectangle"]
    assert parse_event({"task": task.model_dump(mode="json")}).task == task


def test_make_task_overrides_fields_and_new_tasks_have_no_answers() -> None:
    task = make_task(state="new", project_id="7", extra_field=1)
    assert (task.project_id, task.answers, task.delivered_at) == ("7", None, None)
    assert task.model_dump()["extra_field"] == 1
    assert make_task().id != make_task().id


def test_make_webhook_event_wraps_a_task() -> None:
    event = make_webhook_event(state="approved")
    assert isinstance(event, WebhookEvent)
    assert event.task.state == "approved"
    assert isinstance(parse_event(event.model_dump_json()), WebhookEvent)


def test_make_dpp_event_has_a_name_parameters_and_a_round() -> None:
    event = make_dpp_event(name="fun1_x", parameters={"min": 4}, round=2, project_id=5)
    assert isinstance(event, DppEvent)
    assert (event.name, event.parameters, event.round, event.task.project_id) == (
        "fun1_x",
        {"min": 4},
        2,
        "5",
    )
    assert isinstance(parse_event(event.model_dump_json()), DppEvent)


def test_importing_libnar_and_libnar_testing_stays_light() -> None:
    code = (
        "import sys, libnar; light = 'httpx' not in sys.modules; import libnar.testing; "
        "print(light, 'respx' in sys.modules, 'prefect' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False", "False"]


def test_served_fake_answers_over_real_http_on_kept_alive_connections() -> None:
    from libnar.sama import SamaClient
    from libnar.testing import serve_fake_samahub

    with serve_fake_samahub() as fake:
        tasks = fake.add_tasks(make_task() for _ in range(3))
        with SamaClient(fake.api_key, base_url=fake.api_url, max_retries=0) as sama:
            got = [sama.get_task(10, task.id).id for task in tasks]
        fake.drop_connection()
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(f"{fake.api_url}/projects/10.json", params={"access_key": fake.api_key})
    assert got == [task.id for task in tasks]
    assert fake.api_url.startswith("http://127.0.0.1:")
