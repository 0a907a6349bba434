"""JSON on any fsspec URL: fast whole reads, streamed items, atomic writes, `.gz` handled.

Whole documents go through msgspec (the fastest decoder measured here, and the leanest in
memory); the bytes are read into one buffer of the object's size, so a read needs the object's
size on top of the Python objects it makes. `iter_json` streams the items of a large array with
ijson and needs neither. Writes never leave a half-written object: cloud backends stage the
upload and commit it at the end (S3 multipart, GCS resumable, Azure block lists), the others
write a temporary object beside the target and move it into place.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import logging
import uuid
from collections.abc import Iterator
from pathlib import PurePath
from typing import IO, TYPE_CHECKING, Any, cast

from pydantic import BaseModel

from libnar.settings import mask_url
from libnar.storage._errors import StorageError, StorageJSONError
from libnar.storage._filesystems import CLOUD_SCHEMES, url_and_fs

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["iter_json", "read_json", "write_json"]

logger = logging.getLogger("libnar.storage")

#: Bytes read or written per call: large enough for few requests, small beside the object.
CHUNK_BYTES = 8 * 1024 * 1024
#: Bytes per request when streaming: what a streaming read holds at most, whatever the size.
STREAM_BLOCK_BYTES = 2 * 1024 * 1024


def _is_gzip(url: str) -> bool:
    return str(url).lower().endswith(".gz")


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a document's objects are made.

    Decoding makes millions of containers, each of which can start a collection that finds
    nothing to free; pausing it halves the time of a large read (measured, see the benchmark).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _read_all(file: IO[bytes], size: int | None) -> bytearray:
    """Every byte of `file`, read into one buffer of `size` bytes when the size is known."""
    if size is None:
        found = bytearray()
        while chunk := file.read(CHUNK_BYTES):
            found += chunk
        return found
    buffer = bytearray(size)
    view = memoryview(buffer)
    done = 0
    while done < size:
        count = file.readinto(view[done : done + CHUNK_BYTES])  # type: ignore[attr-defined]
        if not count:
            break
        done += count
    view.release()
    if done < size:  # the object shrank while it was read
        del buffer[done:]
    while chunk := file.read(CHUNK_BYTES):  # or grew
        buffer += chunk
    return buffer


def _open_for_reading(
    fs: AbstractFileSystem, fpath: str, url: str, *, streaming: bool
) -> IO[bytes]:
    """Open for reading in requests of a few MiB.

    A whole read asks for each chunk once (no cache: the bytes go straight into one buffer);
    a streaming reader (gzip, ijson) asks for small pieces, which a read-ahead cache of one
    block turns into one request per block.
    """
    if streaming:
        options = {"block_size": STREAM_BLOCK_BYTES, "cache_type": "readahead"}
    else:
        options = {"block_size": CHUNK_BYTES, "cache_type": "none"}
    try:
        return cast(IO[bytes], fs.open(fpath, "rb", **options))
    except FileNotFoundError:
        raise FileNotFoundError(f"{mask_url(str(url))}: no such object") from None


def read_json(url: str | PurePath, **options: Any) -> Any:
    """Read the JSON document at `url` (any fsspec URL or local path; `.gz` is decompressed).

    `options` go to the filesystem (see `filesystem`). Large numbers stay exact (`int`).

    Raises:
        FileNotFoundError: no object at `url`.
        StorageJSONError: the object is not valid JSON (the message says where).
    """
    import msgspec

    url = str(url)
    fs, fpath = url_and_fs(url, **options)
    with _open_for_reading(fs, fpath, url, streaming=_is_gzip(url)) as raw:
        if _is_gzip(url):
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                data = _read_all(cast(IO[bytes], unzipped), None)
        else:
            size = getattr(raw, "size", None)
            data = _read_all(raw, size if isinstance(size, int) else None)
    try:
        with _gc_paused():
            return msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise StorageJSONError(f"{mask_url(url)}: not valid JSON: {exc}") from None


def iter_json(url: str | PurePath, prefix: str = "item", **options: Any) -> Iterator[Any]:
    """Yield the values at `prefix` of the JSON document at `url`, one at a time.

    Memory stays small whatever the object's size: a 200 MB delivery export (a JSON array of
    tasks) is read task by task. `prefix` follows ijson: `"item"` for the items of a top-level
    array, `"tasks.item"` for those of `{"tasks": [...]}`, `""` for the whole document.

    Raises:
        FileNotFoundError: no object at `url`.
        StorageJSONError: the object is not valid JSON (the message says where).
    """
    import ijson

    url = str(url)
    fs, fpath = url_and_fs(url, **options)
    with _open_for_reading(fs, fpath, url, streaming=True) as raw:
        source: IO[bytes] = raw
        with contextlib.ExitStack() as stack:
            if _is_gzip(url):
                source = cast(IO[bytes], stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb")))
            try:
                yield from ijson.items(source, prefix, use_float=True, buf_size=64 * 1024)
            except ijson.JSONError as exc:
                raise StorageJSONError(f"{mask_url(url)}: not valid JSON: {exc}") from None


def _enc_hook(value: Any) -> Any:
    """JSON for what msgspec does not encode itself: pydantic models (libnar's events) and paths."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, PurePath):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON (give a str, number, list, dict, ...)")


def _encoder() -> Any:
    import msgspec

    return msgspec.json.Encoder(enc_hook=_enc_hook, decimal_format="number")


def _encode(encoder: Any, value: Any, url: str, indent: int | None) -> bytes:
    import msgspec

    try:
        encoded: bytes = encoder.encode(value)
    except (TypeError, msgspec.EncodeError, OverflowError) as exc:
        raise StorageJSONError(f"{mask_url(url)}: cannot write this value as JSON: {exc}") from None
    if indent is not None:
        encoded = msgspec.json.format(encoded, indent=indent)
    return encoded


def _iter_encoded(obj: Any, url: str, indent: int | None) -> Iterator[bytes]:
    """The JSON bytes of `obj`: an iterator becomes an array written item by item."""
    encoder = _encoder()
    if not isinstance(obj, Iterator):
        yield _encode(encoder, obj, url, indent)
        return
    separator, opening, closing = (b",", b"[", b"]") if indent is None else (b",\n", b"[\n", b"\n]")
    yield opening
    for number, item in enumerate(obj):
        if number:
            yield separator
        yield _encode(encoder, item, url, indent)
    yield closing


def _protocol(fs: AbstractFileSystem) -> str:
    protocol = fs.protocol
    return protocol if isinstance(protocol, str) else protocol[0]


def _abandon(file: Any, url: str) -> None:
    """Throw away a staged upload (S3: abort the multipart upload; GCS: cancel the session).

    Azure's staged blocks need nothing: uncommitted blocks are never a blob, and Azure drops
    them after a week. The file is marked closed so that nothing commits it later.
    """
    try:
        file.discard()
    except Exception as exc:  # the original error matters more; the upload never completes
        logger.warning("%s: could not cancel the staged upload (%s)", mask_url(url), exc)
    file.buffer = None
    file.closed = True


@contextlib.contextmanager
def _atomic_writer(fs: AbstractFileSystem, fpath: str, url: str) -> Iterator[IO[bytes]]:
    """A file that becomes the object at `fpath` only if the `with` block ends without error."""
    if _protocol(fs) in CLOUD_SCHEMES:
        file = fs.open(fpath, "wb", autocommit=False, block_size=CHUNK_BYTES)
        try:
            yield cast(IO[bytes], file)
            file.close()
        except BaseException:
            _abandon(file, url)
            raise
        file.commit()
        return
    parent = fs._parent(fpath)
    name = fpath.rsplit("/", 1)[-1]
    temporary = f"{parent}/.{name}.{uuid.uuid4().hex[:12]}.partial"
    fs.makedirs(parent, exist_ok=True)
    try:
        with fs.open(temporary, "wb") as file:
            yield cast(IO[bytes], file)
        fs.mv(temporary, fpath)
    except BaseException:
        try:
            if fs.exists(temporary):
                fs.rm(temporary)
        except Exception as exc:
            logger.warning("%s: could not remove the temporary %s (%s)", url, temporary, exc)
        raise


def _write_chunks(file: IO[bytes], data: bytes) -> None:
    """Write `data` in slices: a backend's buffer then holds one slice, not a second copy."""
    view = memoryview(data)
    for start in range(0, len(view), CHUNK_BYTES):
        file.write(view[start : start + CHUNK_BYTES])
    view.release()


def write_json(url: str | PurePath, obj: Any, *, indent: int | None = None, **options: Any) -> None:
    """Write `obj` as JSON to `url`, atomically: the object appears whole or not at all.

    An iterator (e.g. a generator) is written as a JSON array item by item, so an export of
    any size needs the memory of one item. Pydantic models (libnar's events), dataclasses,
    datetimes, UUIDs, sets and paths are written as JSON; `indent` pretty-prints. A `.gz`
    URL is gzip-compressed. When anything fails midway, an existing object keeps its content.

    Raises:
        StorageJSONError: a value cannot be written as JSON (nothing is written).
        StorageError: the backend refused the write (the message names the URL).
    """
    url = str(url)
    fs, fpath = url_and_fs(url, **options)
    try:
        with _atomic_writer(fs, fpath, url) as file, contextlib.ExitStack() as stack:
            target: IO[bytes] = file
            if _is_gzip(url):
                zipped = gzip.GzipFile(fileobj=file, mode="wb", compresslevel=6, mtime=0)
                target = cast(IO[bytes], stack.enter_context(zipped))
            for data in _iter_encoded(obj, url, indent):
                _write_chunks(target, data)
    except (StorageError, FileNotFoundError, PermissionError):
        raise
    except OSError as exc:
        raise StorageError(f"{mask_url(url)}: write failed: {exc}") from exc
