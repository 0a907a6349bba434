"""Peak memory of reading one big SamaHub answer, as a multiple of the answer's size.

A fake SamaHub (libnar.testing's, over HTTP on 127.0.0.1, in its own process) holds one task
whose answer is SIZE MB (default 100), in two shapes:

  shapes: thousands of boxes (many small objects: parsing costs more than the bytes)
  mask:   one base64 mask in `answers` (one big string: reading costs as much as parsing)

Each case runs in a fresh process and reports its peak resident memory (ru_maxrss) over what
it held before the call, divided by the answer's size:

  (a) whole body, then parse: how SamaClient read answers before it streamed them (httpx
      reads every chunk, then joins them into one `bytes`, then the task is parsed)
  (b) SamaClient.get_task: the answer streamed into one buffer, then parsed
  (c) SamaClient.get_task with max_answer_bytes at a tenth of the answer: refused
  (d) the same, for an answer that does not announce its length (chunked): read up to the
      limit, then refused (the answer comes from a file through httpx.MockTransport, as the
      fake always announces its answers' length)

Run: python benchmarks/bench_sama_memory.py [SIZE_MB]
Against another checkout's client: PYTHONPATH=/path/to/checkout/src python ... (case (c)
is skipped where max_answer_bytes does not exist).
"""

from __future__ import annotations

import base64
import multiprocessing
import random
import resource
import shutil
import sys
import tempfile
from collections.abc import Callable
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

TASK_IDS = {"shapes": "5f1e2d3c4b5a69788796a5b4", "mask": "5f1e2d3c4b5a69788796a5b5"}
#: A small task each case reads first, so that first-call costs are not measured.
WARM_UP_ID = "5f1e2d3c4b5a69788796a5b6"


def big_task(shape: str, size: int) -> dict[str, Any]:
    """A delivered task whose JSON is about `size` bytes."""
    rng = random.Random(7)
    if shape == "mask":
        raw = rng.randbytes(size * 3 // 4)
        answers: dict[str, Any] = {
            "layers": {
                "raster_coding": {
                    "mask_url": "data:image/png;base64," + base64.b64encode(raw).decode()
                }
            }
        }
    else:
        box = {
            "type": "rectangle",
            "index": 0,
            "points": [[12.5, 40.25], [310.75, 40.25], [310.75, 220.5], [12.5, 220.5]],
            "tags": {"label": "car", "occluded": "0"},
        }
        count = size // 140  # one box is about 140 bytes of JSON
        shapes = [dict(box, index=i) for i in range(count)]
        answers = {"layers": {"vector_tagging": [{"shapes": shapes}]}}
    return {
        "id": TASK_IDS[shape],
        "project_id": 10,
        "state": "delivered",
        "data": {"image_url": "https://example.com/a.jpg"},
        "answers": answers,
        "created_at": "2024-05-01T00:00:00Z",
        "delivered_at": "2024-05-02T00:00:00Z",
    }


def serve(size: int, folder: str, ready: Any, stop: Event) -> None:
    """Run the fake SamaHub with both tasks in this (child) process until `stop` is set.

    Also writes each big answer to `folder`, for case (d) to read without a network.
    """
    import os

    import httpx

    # A client that stops reading makes the server's write fail: that is expected here.
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115

    from libnar.testing import FakeSamaHub, serve_fake_samahub

    fake = FakeSamaHub()
    fake.add_tasks(big_task(shape, size) for shape in TASK_IDS)
    fake.add_task(dict(big_task("shapes", 1_000), id=WARM_UP_ID))
    answers: dict[str, httpx.Response] = {}
    handle = fake.handle

    def cached(request: httpx.Request) -> httpx.Response:  # encode each answer once
        key = request.url.path
        if key not in answers:
            answers[key] = handle(request)
            answers[key].read()
        return answers[key]

    fake.handle = cached  # type: ignore[method-assign]
    with serve_fake_samahub(fake) as served:
        sizes = {}
        for shape, tid in TASK_IDS.items():
            body = cached(_task_request(served.api_url, served.api_key, tid)).content
            Path(folder, tid).write_bytes(body)
            sizes[shape] = len(body)
        ready.put((served.api_url, served.api_key, sizes))
        stop.wait()


def _task_request(api_url: str, key: str, tid: str) -> Any:
    import httpx

    url = f"{api_url}/projects/10/tasks/{tid}.json"
    return httpx.Request("GET", url, params={"access_key": key, "same_as_delivery": "true"})


def whole_then_parse(api_url: str, key: str, tid: str, limit: int) -> str:
    import httpx

    from libnar.sama._models import TaskAnswer

    with httpx.Client() as http:
        response = http.send(_task_request(api_url, key, tid))
        return TaskAnswer.model_validate_json(response.content).task.id


def streamed(api_url: str, key: str, tid: str, limit: int) -> str:
    from libnar.sama import SamaClient

    with SamaClient(key, base_url=api_url, max_retries=0) as sama:
        return sama.get_task(10, tid).id


def capped(api_url: str, key: str, tid: str, limit: int) -> str:
    from libnar.sama import SamaClient, SamaError

    try:
        sama = SamaClient(key, base_url=api_url, max_retries=0, max_answer_bytes=limit)
    except TypeError:
        return "skipped: this client has no max_answer_bytes"
    with sama:
        try:
            return sama.get_task(10, tid).id
        except SamaError as error:
            return type(error).__name__


def capped_chunked(api_url: str, key: str, tid: str, limit: int) -> str:
    import httpx

    from libnar.sama import SamaClient, SamaError

    body = _BODIES.get(tid, b'{"task": {"id": "x", "project_id": 10}}')

    def chunks() -> Any:
        for start in range(0, len(body), 65_536):
            yield body[start : start + 65_536]

    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=chunks()))
    try:
        sama = SamaClient(
            key, base_url=api_url, max_retries=0, max_answer_bytes=limit, transport=transport
        )
    except TypeError:
        return "skipped: this client has no max_answer_bytes"
    with sama:
        try:
            return sama.get_task(10, tid).id
        except SamaError as error:
            return type(error).__name__


#: Answers `capped_chunked` serves from memory, fetched before the measured call.
_BODIES: dict[str, bytes] = {}


def measure(
    work_name: str, api_url: str, key: str, tid: str, limit: int, folder: str, out: Any
) -> None:
    """Run one case in this fresh process; report (result, peak KiB over what it held before)."""
    work: Callable[[str, str, str, int], str] = globals()[work_name]
    work(api_url, key, WARM_UP_ID, limit)  # imports, SSL context, first-call caches
    if work_name == "capped_chunked":
        _BODIES[tid] = Path(folder, tid).read_bytes()  # held before: not measured
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = work(api_url, key, tid, limit)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out.put((result, after - before))


CASES = [
    ("(a) whole body, then parse (before)", "whole_then_parse"),
    ("(b) SamaClient, streamed", "streamed"),
    ("(c) SamaClient, max_answer_bytes = size/10", "capped"),
    ("(d) the same, answer without a length", "capped_chunked"),
]


def main(size_mb: int) -> None:
    spawn = multiprocessing.get_context("spawn")
    ready, stop = spawn.Queue(), spawn.Event()
    folder = tempfile.mkdtemp(prefix="bench-sama-memory-")
    server = spawn.Process(
        target=serve, args=(size_mb * 1_000_000, folder, ready, stop), daemon=True
    )
    server.start()
    try:
        api_url, key, sizes = ready.get(timeout=600)
        print("peak memory over what the process held before the call, / the answer's size")
        print(f"{'case':44} {'shape':7} {'answer':>9} {'peak':>9} {'ratio':>6}  result")
        for shape, tid in TASK_IDS.items():
            size = sizes[shape]
            for label, work_name in CASES:
                out = spawn.Queue()
                args = (work_name, api_url, key, tid, size // 10, folder, out)
                child = spawn.Process(target=measure, args=args)
                child.start()
                result, peak_kib = out.get(timeout=600)
                child.join()
                peak = peak_kib * 1024
                print(
                    f"{label:44} {shape:7} {size / 1e6:7.0f}MB {peak / 1e6:7.0f}MB "
                    f"{peak / size:5.2f}x  {result}"
                )
    finally:
        stop.set()
        server.join(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
