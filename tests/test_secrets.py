"""get_secret: the environment, Prefect Secret blocks (a real server), AWS Secrets Manager
(moto's server); the documented order, the cache, and values that never show."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from libnar.secrets import (
    SecretFormatError,
    SecretNotFoundError,
    SecretStoreError,
    clear_secret_cache,
    get_access_key,
    get_secret,
    get_secret_json,
    secret_block_name,
    secret_env_variable,
)
from libnar.testing import MotoServer, PrefectServer, free_port


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No kept values between tests, no `.env` of the caller's, no stray Prefect URL."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    clear_secret_cache()
    yield
    clear_secret_cache()


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(
    ("name", "variable", "block"),
    [
        ("slack-token", "LIBNAR_SECRET_SLACK_TOKEN", "slack-token"),
        ("nps/prod/db", "LIBNAR_SECRET_NPS_PROD_DB", "nps-prod-db"),
        ("Primary_Access_Key", "LIBNAR_SECRET_PRIMARY_ACCESS_KEY", "primary-access-key"),
    ],
)
def test_a_secret_name_maps_to_one_variable_and_one_block(
    name: str, variable: str, block: str
) -> None:
    assert secret_env_variable(name) == variable
    assert secret_block_name(name) == block


def test_the_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIBNAR_SECRET_API_TOKEN", "from-env")
    (tmp_path / ".env").write_text("LIBNAR_SECRET_OTHER_TOKEN=from-dotenv\n")
    monkeypatch.setenv("LIBNAR_SECRET_SOURCES", "env")
    assert get_secret("api-token").get_secret_value() == "from-env"
    assert get_secret("other_token").get_secret_value() == "from-dotenv"


def test_a_value_never_shows_in_repr_str_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIBNAR_SECRET_SOURCES", "env")
    monkeypatch.setenv("LIBNAR_SECRET_TOKEN", "hunter2-not-json")
    secret = get_secret("token")
    assert "hunter2" not in repr(secret) + str(secret) + f"{secret}"
    with pytest.raises(SecretFormatError) as caught:
        get_secret_json("token")
    assert "hunter2" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


def test_missing_everywhere_lists_where_it_looked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIBNAR_GCP_SECRETS_PROJECT", raising=False)
    monkeypatch.delenv("LIBNAR_AWS_SECRETS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(SecretNotFoundError) as caught:
        get_secret("nps/absent")
    lines = str(caught.value).splitlines()
    # The Prefect line depends on whether this session's Prefect server is configured yet.
    prefect = lines.pop(2)
    assert re.fullmatch(
        r"  Prefect Secret block 'nps-absent': (skipped \(PREFECT_API_URL is not set\)"
        r"|not found at http://127\.0\.0\.1:\d+/api)",
        prefect,
    )
    assert lines == [
        "secret 'nps/absent' not found; looked in:",
        "  environment: LIBNAR_SECRET_NPS_ABSENT is not set",
        "  AWS Secrets Manager: skipped (no region: set LIBNAR_AWS_SECRETS_REGION)",
        "  GCP Secret Manager: skipped (LIBNAR_GCP_SECRETS_PROJECT is not set)",
    ]


@pytest.mark.slow
def test_a_prefect_secret_block(
    prefect_server: PrefectServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.blocks.system import Secret

    name = _unique("nps-reporting")
    Secret(value="block-value").save(name)
    Secret(value={"host": "db.internal", "port": 5432}).save(f"{name}-json")
    monkeypatch.setenv("PREFECT_API_URL", prefect_server.api_url)
    monkeypatch.setenv("LIBNAR_SECRET_SOURCES", "env,prefect")
    assert get_secret(name).get_secret_value() == "block-value"
    assert get_secret_json(f"{name}-json") == {"host": "db.internal", "port": 5432}
    with pytest.raises(
        SecretNotFoundError, match=rf"Prefect Secret block '{name}-x': not found at"
    ):
        get_secret(f"{name}-x")


def test_aws_secrets_manager(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in moto_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LIBNAR_SECRET_SOURCES", "env,aws")
    name = _unique("nps/prod/db")
    moto_server.create_secret(name, json.dumps({"username": "nps", "password": "pw"}))
    assert get_secret_json(name) == {"username": "nps", "password": "pw"}
    with pytest.raises(SecretNotFoundError, match=r"AWS Secrets Manager: 'nps/other' not found"):
        get_secret("nps/other")


def test_the_environment_comes_before_the_stores(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in moto_server.env().items():
        monkeypatch.setenv(key, value)
    name = _unique("ordered")
    moto_server.create_secret(name, "from-aws")
    monkeypatch.setenv("LIBNAR_SECRET_SOURCES", "env,aws")
    monkeypatch.setenv(secret_env_variable(name), "from-env")
    assert get_secret(name).get_secret_value() == "from-env"
    monkeypatch.setenv("LIBNAR_SECRET_SOURCES", "aws,env")
    assert get_secret(name, refresh=True).get_secret_value() == "from-aws"


def test_values_are_kept_until_refreshed(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in moto_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LIBNAR_SECRET_SOURCES", "aws")
    name = _unique("rotating")
    moto_server.create_secret(name, "v1")
    assert get_secret(name).get_secret_value() == "v1"
    moto_server.client("secretsmanager").put_secret_value(SecretId=name, SecretString="v2")
    assert get_secret(name).get_secret_value() == "v1"
    assert get_secret(name, refresh=True).get_secret_value() == "v2"
    moto_server.client("secretsmanager").put_secret_value(SecretId=name, SecretString="v3")
    clear_secret_cache(name)
    assert get_secret(name).get_secret_value() == "v3"


def test_an_unreachable_store_is_an_error_not_a_missing_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIBNAR_SECRET_SOURCES", "aws")
    monkeypatch.setenv("LIBNAR_AWS_SECRETS_REGION", "us-east-1")
    monkeypatch.setenv("LIBNAR_AWS_SECRETS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with pytest.raises(SecretStoreError, match=r"'db': AWS Secrets Manager did not answer"):
        get_secret("db")


def test_the_earlier_access_keys_are_samahubs_api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """`get_access_key` gives the keys SamaClient uses, then falls back to the secret stores."""
    monkeypatch.setenv("LIBNAR_SECRET_SOURCES", "env")
    monkeypatch.setenv("SAMA_API_KEY", "pk")
    monkeypatch.delenv("SAMA_SECONDARY_API_KEY", raising=False)
    monkeypatch.setenv("LIBNAR_SECRET_SECONDARY_ACCESS_KEY", "sk")
    assert get_access_key("primary").get_secret_value() == "pk"
    assert get_access_key("secondary").get_secret_value() == "sk"
    monkeypatch.setenv("SAMA_SECONDARY_API_KEY", "sk2")
    assert get_access_key("secondary").get_secret_value() == "sk2"
    monkeypatch.delenv("SAMA_API_KEY")
    with pytest.raises(SecretNotFoundError, match="LIBNAR_SECRET_PRIMARY_ACCESS_KEY"):
        get_access_key("primary")
    with pytest.raises(ValueError, match="use 'primary' or 'secondary'"):
        get_access_key("tertiary")  # type: ignore[arg-type]


def test_a_python_dict_literal_is_read_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIBNAR_SECRET_SOURCES", "env")
    monkeypatch.setenv("LIBNAR_SECRET_OLD_STYLE", "{'user': 'nps', 'port': 5432}")
    with pytest.warns(DeprecationWarning, match="'old-style' is a Python dict literal"):
        assert get_secret_json("old-style") == {"user": "nps", "port": 5432}


@pytest.mark.parametrize("value", ["[1, 2]", "plain", "__import__('os').getcwd()"])
def test_get_secret_json_refuses_what_is_not_an_object(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIBNAR_SECRET_SOURCES", "env")
    monkeypatch.setenv("LIBNAR_SECRET_NOT_AN_OBJECT", value)
    with pytest.raises(SecretFormatError, match="'not-an-object' is not a JSON object"):
        get_secret_json("not-an-object")
