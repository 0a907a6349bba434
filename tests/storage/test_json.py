"""read_json / iter_json / write_json on every backend: round trips, `.gz`, streaming,
atomic writes (a write that fails midway leaves no object and keeps an older one), errors."""

from __future__ import annotations

import gzip
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from libnar.storage import (
    StorageJSONError,
    filesystem,
    iter_json,
    read_json,
    write_json,
)
from libnar.storage._json import CHUNK_BYTES
from libnar.testing import make_dpp_event, make_task

DOCUMENT = {
    "tasks": [{"id": "64b7f0c2a1b2c3d4e5f60718", "answers": {"road": "paved|wet"}}],
    "big": 123456789012345678901234567890,
    "ratio": 0.25,
    "text": "Zürich — 東京",
    "empty": None,
}


@pytest.mark.parametrize("name", ["doc.json", "doc.json.gz"])
def test_written_json_reads_back_equal(store: str, name: str) -> None:
    write_json(f"{store}/out/{name}", DOCUMENT)
    assert read_json(f"{store}/out/{name}") == DOCUMENT


def test_gz_url_is_written_gzip_compressed(store: str) -> None:
    write_json(f"{store}/doc.json.gz", DOCUMENT)
    fs = filesystem(store)
    raw = fs.cat_file(fs._strip_protocol(f"{store}/doc.json.gz"))
    assert raw[:2] == b"\x1f\x8b"
    assert b'"big":123456789012345678901234567890' in gzip.decompress(raw)


def test_iter_json_yields_the_items_of_an_array_one_by_one(store: str) -> None:
    tasks = [make_task(answers={"n": str(i)}).model_dump(mode="json") for i in range(50)]
    write_json(f"{store}/export.json.gz", iter(tasks))
    got = iter_json(f"{store}/export.json.gz")
    assert next(got) == tasks[0]
    assert [tasks[0], *got] == tasks


def test_iter_json_follows_a_prefix_into_an_object(store: str) -> None:
    write_json(f"{store}/page.json", {"tasks": [{"id": 1}, {"id": 2}], "next": None})
    assert list(iter_json(f"{store}/page.json", "tasks.item")) == [{"id": 1}, {"id": 2}]


def test_indent_pretty_prints(store: str) -> None:
    write_json(f"{store}/pretty.json", {"a": [1]}, indent=2)
    fs = filesystem(store)
    assert fs.cat_file(fs._strip_protocol(f"{store}/pretty.json")) == b'{\n  "a": [\n    1\n  ]\n}'


def test_a_generator_is_written_as_an_array(store: str) -> None:
    write_json(f"{store}/items.json", (i * i for i in range(4)))
    assert read_json(f"{store}/items.json") == [0, 1, 4, 9]


def _failing_items(total_bytes: int) -> Iterator[dict[str, Any]]:
    """Items adding up to `total_bytes` of JSON, then an error (a flow failing midway)."""
    item = {"payload": "x" * 100_000}
    for _ in range(total_bytes // 100_000 + 1):
        yield item
    raise RuntimeError("the flow failed midway")


@pytest.mark.parametrize(
    "size",
    [pytest.param(50_000, id="within-first-part"), pytest.param(2 * CHUNK_BYTES, id="parts-sent")],
)
def test_a_write_failing_midway_leaves_the_old_object_whole(
    store: str, size: int, request: pytest.FixtureRequest
) -> None:
    if store.startswith("gs://") and size > CHUNK_BYTES:
        pytest.skip(
            "the GCS emulator does not implement cancelling a resumable upload (DELETE answers"
            " 501); the unfinished upload never becomes an object either way"
        )
    url = f"{store}/result.json"
    write_json(url, {"version": 1})
    with pytest.raises(RuntimeError, match="failed midway"):
        write_json(url, _failing_items(size))
    with pytest.raises(RuntimeError, match="failed midway"):
        write_json(f"{store}/new.json", _failing_items(size))

    assert read_json(url) == {"version": 1}
    fs = filesystem(store)
    fs.invalidate_cache()
    names = [Path(p).name for p in fs.ls(fs._strip_protocol(store), detail=False)]
    assert names == ["result.json"], "no half-written object and no temporary left behind"
    if store.startswith("s3://"):
        moto = request.getfixturevalue("moto_server")
        uploads = moto.client("s3").list_multipart_uploads(Bucket=store.removeprefix("s3://"))
        assert not uploads.get("Uploads"), "the multipart upload was aborted"


def test_a_value_json_cannot_hold_raises_and_writes_nothing() -> None:
    url = "memory://libnar-unwritable/x.json"
    with pytest.raises(StorageJSONError, match=r"memory://libnar-unwritable/x.json: cannot write"):
        write_json(url, {"when": object()})
    assert not filesystem(url).exists("/libnar-unwritable/x.json")


def test_events_and_paths_are_written_as_json() -> None:
    event = make_dpp_event()
    write_json("memory://libnar-models/event.json", {"event": event, "where": Path("/a/b")})
    got = read_json("memory://libnar-models/event.json")
    assert got == {"event": event.model_dump(mode="json", by_alias=True), "where": "/a/b"}


def test_reading_invalid_json_names_the_url_and_the_place(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"a": ')
    with pytest.raises(StorageJSONError, match=r"bad\.json: not valid JSON: .*") as caught:
        read_json(tmp_path / "bad.json")
    with pytest.raises(StorageJSONError, match=r"bad\.json: not valid JSON"):
        list(iter_json(tmp_path / "bad.json", ""))
    assert '{"a"' not in str(caught.value)


def test_reading_a_missing_object_raises_file_not_found(store: str) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.json"):
        read_json(f"{store}/missing.json")


def _export(target_bytes: int) -> list[dict[str, Any]]:
    shape = {"type": "polygon", "index": 1, "points": [[12, 40.5]] * 8, "tags": {"kind": "van"}}
    task = make_task(answers={"photo": {"layers": {"vector_tagging": [{"shapes": [shape] * 10}]}}})
    one = task.model_dump(mode="json")
    size = len(str(one))
    return [dict(one, id=f"{n:024x}") for n in range(target_bytes // size + 1)]


def test_reading_needs_no_more_than_the_objects_plus_the_bytes() -> None:
    """A delivery export read whole costs its Python objects plus one copy of its bytes."""
    url = "memory://libnar-memory/export.json"
    write_json(url, _export(8_000_000))
    size = filesystem(url).size("/libnar-memory/export.json")
    tracemalloc.start()
    try:
        tasks = read_json(url)
        retained, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(tasks) > 100
    assert peak - retained < 2 * size, f"transient {(peak - retained) / size:.2f}x the object"


def test_streaming_an_export_needs_memory_for_one_item_not_the_object() -> None:
    url = "memory://libnar-memory/stream.json.gz"
    write_json(url, iter(_export(8_000_000)))
    size = len(gzip.decompress(filesystem(url).cat_file("/libnar-memory/stream.json.gz")))
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_json(url))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count > 100
    assert peak < size / 5, f"peak {peak} bytes while streaming a {size}-byte export"
