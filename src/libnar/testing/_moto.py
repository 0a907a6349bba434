"""moto's standalone server on 127.0.0.1: a real S3 and Secrets Manager API over HTTP.

Not moto's in-process patching: the server is a child process, so s3fs, boto3 and libnar talk
to it through sockets exactly as they talk to AWS (and a benchmark measuring this process's
memory does not count the server's).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any, Self

from libnar._local_stack._child import ChildServer, stop_child, wait_until_answering
from libnar._local_stack._prefect import free_port

__all__ = ["MotoServer"]


class MotoServer(ChildServer):
    """`moto_server` as a child process; `with MotoServer() as moto:` starts and stops it.

    Example:
        ```python
        with MotoServer() as moto:
            bucket = moto.create_bucket()          # "s3://libnar-test-..."
            write_json(f"{bucket}/x.json", {"a": 1}, **moto.s3_options())
        ```
    """

    #: Credentials moto accepts (any would do; these are the ones its docs use).
    access_key_id = "testing"
    secret_access_key = "testing"  # noqa: S105 - moto's fixed test credential
    region = "us-east-1"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        """The server's base URL, for `endpoint_url=` of boto3, s3fs and libnar."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Start `python -m moto.server` and return once it answers."""
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.process = subprocess.Popen(  # noqa: S603 - our own command
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until_answering(self.process, f"{self.endpoint_url}/moto-api/", 60, "moto server")
        return self

    def stop(self) -> None:
        """Stop the server; everything it held is gone."""
        if self.process is not None:
            stop_child(self.process)
            self.process = None

    def s3_options(self) -> dict[str, Any]:
        """Storage options for `s3://` URLs on this server (`filesystem(url, **options)`)."""
        return {
            "endpoint_url": self.endpoint_url,
            "key": self.access_key_id,
            "secret": self.secret_access_key,
            "client_kwargs": {"region_name": self.region},
        }

    def env(self) -> dict[str, str]:
        """Settings that point `s3://` URLs and AWS Secrets Manager at this server."""
        return {
            "LIBNAR_S3_ENDPOINT_URL": self.endpoint_url,
            "LIBNAR_S3_ACCESS_KEY_ID": self.access_key_id,
            "LIBNAR_S3_SECRET_ACCESS_KEY": self.secret_access_key,
            "LIBNAR_S3_REGION": self.region,
            "LIBNAR_AWS_SECRETS_ENDPOINT_URL": self.endpoint_url,
            "LIBNAR_AWS_SECRETS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }

    def client(self, service: str) -> Any:
        """A boto3 client of `service` (`"s3"`, `"secretsmanager"`) on this server."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a unique name by default) and return its `s3://` URL."""
        name = name or f"libnar-test-{uuid.uuid4().hex[:12]}"
        self.client("s3").create_bucket(Bucket=name)
        return f"s3://{name}"

    def create_secret(self, name: str, value: str) -> None:
        """Store a secret in Secrets Manager (a string; JSON for an object)."""
        self.client("secretsmanager").create_secret(Name=name, SecretString=value)
