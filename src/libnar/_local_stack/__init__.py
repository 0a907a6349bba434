"""The local stack: a Prefect server, the gateway and a fake SamaHub, run on 127.0.0.1.

Layer 4, beside the CLI. `libnar dev` runs it; `libnar.testing` re-exports it for tests and
scripts. It needs only libnar's own dependencies (no pytest, no respx), so `libnar dev` works
right after `pip install libnar`.

- `WorkerProcess`: a real Prefect worker on a pool (`libnar dev`'s local process pool, whose
  runs `_limits` holds to their memory and CPU).
- `PrefectServer`, `GatewayProcess`: child processes that start, wait until they answer, and
  stop cleanly (`with` blocks); `free_port` picks a port.
- `FakeSamaHub`, `serve_fake_samahub`: a stateful fake of SamaHub's API and DPP endpoint,
  served over real HTTP.
- `make_task`, `make_webhook_event`, `make_dpp_event`, `make_task_id`: sample SamaHub payloads
  in the delivery format of `reference/answers.md`, the ones `libnar dev` prints.

Internal (no promise of stability): import these names from `libnar.testing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from libnar._lazy import lazy_exports
from libnar._local_stack._child import ChildServer, stop_child, wait_until_answering
from libnar._local_stack._factories import (
    box,
    make_creation_schema,
    make_delivery_schema,
    make_dpp_event,
    make_task,
    make_task_id,
    make_video_answers,
    make_webhook_event,
)
from libnar._local_stack._gateway import GatewayProcess
from libnar._local_stack._prefect import PrefectServer, free_port
from libnar._local_stack._worker import WorkerProcess

if TYPE_CHECKING:
    from libnar._local_stack._fake_samahub import FakeCall, FakeSamaHub
    from libnar._local_stack._fake_server import serve_fake_samahub

__all__ = [
    "ChildServer",
    "FakeCall",
    "FakeSamaHub",
    "GatewayProcess",
    "PrefectServer",
    "WorkerProcess",
    "box",
    "free_port",
    "make_creation_schema",
    "make_delivery_schema",
    "make_dpp_event",
    "make_task",
    "make_task_id",
    "make_video_answers",
    "make_webhook_event",
    "serve_fake_samahub",
    "stop_child",
    "wait_until_answering",
]

# Loaded on first use: importing the fake costs more than the rest together.
__getattr__ = lazy_exports(
    __name__,
    {
        "libnar._local_stack._fake_samahub": ["FakeCall", "FakeSamaHub"],
        "libnar._local_stack._fake_server": ["serve_fake_samahub"],
    },
)
