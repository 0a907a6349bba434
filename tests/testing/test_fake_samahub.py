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


# --- the routes' shape --------------------------------------------------------------------


def test_every_route_name_has_exactly_one_route() -> None:
    from typing import get_args

    from libnar._local_stack._fake_samahub import ROUTES, RouteName

    assert list(ROUTES) == list(get_args(RouteName))
    assert all(route.name == name for name, route in ROUTES.items())


@pytest.mark.slow
def test_a_misspelt_route_name_fails_the_type_check(tmp_path: Any) -> None:
    from mypy import api as mypy_api

    snippet = tmp_path / "uses_the_fake.py"
    snippet.write_text(
        "from libnar.testing import FakeSamaHub\n\n\n"
        "def check(fake: FakeSamaHub) -> None:\n"
        '    fake.calls("task")\n'
        '    fake.calls("taks")\n'
        '    fake.fail(503, route="create_bach")\n'
    )
    out, _, status = mypy_api.run(
        [str(snippet), "--strict", "--no-incremental", "--follow-imports=silent"]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1
    assert len(errors) == 2, out
    assert (
        'Argument 1 to "calls" of "FakeSamaHub" has incompatible type "Literal[\'taks\']"'
        in errors[0]
    )
    assert (
        '"route" to "fail" of "FakeSamaHub" has incompatible type "Literal[\'create_bach\']"'
        in errors[1]
    )


# --- batches by file ------------------------------------------------------------------------


def create_by_file(fake: FakeSamaHub, **body: Any) -> dict[str, Any]:
    body = {"tasks_file_name": "tasks.json", **body}
    response = api(fake, "POST", "/projects/10/batches.json", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_batch_by_file_creates_its_tasks_on_continue(fake_samahub: FakeSamaHub) -> None:
    fake_samahub.add_project(10)
    created = create_by_file(fake_samahub, client_batch_id="files-1")
    put_url = created["tasks_put_url"]
    specs = [{"data": {"url": f"https://x.test/{n}.jpg"}, "priority": 2} for n in range(1500)]

    uploaded = httpx.put(put_url, json=specs)  # the presigned URL: no key
    before = fake_samahub.created_tasks(10)
    done = api(fake_samahub, "POST", f"/projects/10/batches/{created['batch_id']}/continue.json")

    assert put_url.startswith(fake_samahub.upload_url + "/")
    assert (uploaded.status_code, before) == (200, [])
    assert done.json() == {"batch_id": created["batch_id"], "state": "processing"}
    tasks = fake_samahub.created_tasks(10, client_batch_id="files-1")
    assert len(tasks) == 1500  # no 1,000-task limit by file
    assert {t.data["url"] for t in tasks} == {s["data"]["url"] for s in specs}
    status = api(fake_samahub, "GET", f"/projects/10/batches/{created['batch_id']}.json")
    assert (status.json()["state"], status.json()["task_count"]) == ("completed", 1500)


@pytest.mark.parametrize(
    ("step", "status", "message"),
    [
        pytest.param("continue-without-file", 400, "No tasks file was uploaded for batch 1000", id="no-file"),
        pytest.param("continue-twice", 400, "Batch 1000 is completed: it was continued already", id="twice"),
        pytest.param("put-after-continue", 403, "Request has expired or the URL is not valid", id="late-put"),
        pytest.param("put-with-key", 400, "A tasks_put_url takes no access_key: the API key would leak", id="key-leak"),
        pytest.param("put-not-a-list", 400, "The tasks file must be a JSON array of tasks", id="not-a-list"),
        pytest.param("put-unsigned", 403, "The request signature does not match: use tasks_put_url as given", id="unsigned"),
        pytest.param("both-ways", 400, "Send either tasks or tasks_file_name, not both", id="both"),
    ],
)  # fmt: skip
def test_the_file_path_refuses_what_samahub_would(
    fake_samahub: FakeSamaHub, step: str, status: int, message: str
) -> None:
    fake_samahub.add_project(10)
    if step == "both-ways":
        response = api(
            fake_samahub,
            "POST",
            "/projects/10/batches.json",
            json={"tasks_file_name": "t.json", "tasks": [{"data": {}}]},
        )
    else:
        created = create_by_file(fake_samahub)
        url, cont = (
            created["tasks_put_url"],
            f"/projects/10/batches/{created['batch_id']}/continue.json",
        )
        if step != "continue-without-file":
            httpx.put(url, json=[{"data": {"n": "1"}}])
        if step in ("continue-twice", "put-after-continue"):
            api(fake_samahub, "POST", cont)
        if step.startswith("continue"):
            response = api(fake_samahub, "POST", cont)
        elif step == "put-with-key":
            response = httpx.put(url, params={"access_key": fake_samahub.api_key}, json=[])
        elif step == "put-not-a-list":
            response = httpx.put(url, json={"tasks": []})
        elif step == "put-unsigned":
            response = httpx.put(url.split("?")[0], json=[])
        else:
            response = httpx.put(url, json=[])
    assert response.status_code == status
    assert response.json()["errors"][0]["message"] == message


def test_tasks_breaking_the_creation_schema_fail_and_show_in_the_batch_status(
    fake_samahub: FakeSamaHub,
) -> None:
    from libnar.testing import make_creation_schema

    fake_samahub.add_project(10)
    fake_samahub.schemas["10"] = {"create_task": make_creation_schema({"url": "https://x"})}
    body = {"tasks": [{"data": {"url": "https://x.test/1.jpg"}}, {"data": {"url": 3}}]}
    created = api(fake_samahub, "POST", "/projects/10/batches.json", json=body).json()
    path = f"/projects/10/batches/{created['batch_id']}.json"

    full = api(fake_samahub, "GET", path).json()
    omitted = api(fake_samahub, "GET", path, params={"omit_failed_task_data": "true"}).json()

    assert (full["task_count"], full["failed_task_count"]) == (1, 1)
    failed = {"state": "failed", "errors": ["data.url: found 3; expected a string"]}
    assert full["tasks"][1] == {**failed, "data": {"url": 3}}
    assert omitted["tasks"][1] == failed
    assert [c.params for c in fake_samahub.calls("batch")][1] == {"omit_failed_task_data": "true"}


def test_the_served_fake_takes_uploads_on_its_own_socket() -> None:
    from libnar.testing import serve_fake_samahub

    with serve_fake_samahub() as fake:
        fake.add_project(10)
        created = create_by_file(fake)
        put = httpx.put(created["tasks_put_url"], json=[{"data": {"a": "1"}}])
        api(fake, "POST", f"/projects/10/batches/{created['batch_id']}/continue.json")
        tasks = fake.created_tasks(10)
    assert created["tasks_put_url"].startswith(fake.upload_url)
    assert fake.upload_url.startswith("http://127.0.0.1:")
    assert (put.status_code, [t.data for t in tasks]) == (200, [{"a": "1"}])
    assert [c.route for c in fake.calls()] == ["create_batch", "upload_tasks", "continue_batch"]


# --- answer factories ------------------------------------------------------------------------


def test_make_video_answers_are_samahub_video_answers_with_locations() -> None:
    from libnar.answers import Answers
    from libnar.testing import make_video_answers

    answers = make_video_answers(shapes=3, frames=25, key_every=10, seed=4)
    typed = Answers.from_dict(answers)

    assert answers == make_video_answers(shapes=3, frames=25, key_every=10, seed=4)
    shapes = typed.video_shapes()
    assert [len(s.keyframes) for s in shapes] == [4, 4, 4]  # 0, 10, 20 and the last, 24
    assert all(len(s.locations) == 25 for s in shapes)
    assert typed.to_dict() == answers


def test_make_video_answers_makes_3d_cuboids() -> None:
    from libnar.answers import Answers
    from libnar.testing import make_video_answers

    [cuboid] = Answers.from_dict(
        make_video_answers(output="Scene", shapes=1, frames=5, key_every=4, cuboids=True)
    ).video_shapes()

    assert cuboid.type == "cuboid"
    assert cuboid.keyframes[0].is_3d
    assert len(cuboid.at(2).points or []) == 8


def test_dpp_results_breaking_the_delivery_schema_are_refused(fake_samahub: FakeSamaHub) -> None:
    from libnar.testing import make_delivery_schema

    task = fake_samahub.add_task(make_task())
    fake_samahub.schemas["10"] = {"deliver_task": make_delivery_schema(task.answers or {})}
    url = f"{fake_samahub.dpp_url}/api/v1/projects/10/tasks/{task.id}/post_processed"
    headers = {"Authorization": f"Bearer {fake_samahub.dpp_key}"}
    good = {"round": 1, "data": task.data, "answers": task.answers}
    bad = {**good, "answers": {**(task.answers or {}), "weather": 7}}

    refused = httpx.put(url, json=bad, headers=headers)
    accepted = httpx.put(url, json=good, headers=headers)

    assert (refused.status_code, refused.json()) == (
        400,
        {
            "message": "Invalid DPP result: the answers do not follow the delivery schema:"
            " answers.weather: found 7; expected a string"
        },
    )
    assert accepted.status_code == 200
