"""read_json of a 50 MB delivery export on S3 (moto's server) against json.load with boto3 / s3fs.

moto's standalone server runs in its own process on 127.0.0.1 and holds a delivery export (a
JSON array of tasks with vector shapes) of SIZE MB (default 50), plain and gzip-compressed.
Each case runs in fresh processes: one for time (median of REPEATS reads, default 3, after a
warm-up read), one for resident memory and one for tracemalloc (one read each):

  boto3:      json.load(s3.get_object(...)["Body"])      (the baseline)
  s3fs:       json.load(s3fs.S3FileSystem().open(...))
  read_json:  libnar.storage.read_json("s3://...")
  read_gz:    libnar.storage.read_json("s3://....json.gz")
  iter_json:  for task in libnar.storage.iter_json("s3://..."): count
  iter_gz:    the same on the .gz object

Memory: the process's peak resident memory over what it held before the read (VmHWM after a
reset, Linux), and
tracemalloc's peak minus what the result keeps (what the read costs beyond its result), both
as multiples of the object's size. Ratios are against boto3 in the same run.

Run: python benchmarks/bench_storage.py [SIZE_MB] [REPEATS]
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

BUCKET = "libnar-bench"
CASES = ["boto3", "s3fs", "read_json", "read_gz", "iter_json", "iter_gz"]


def export(size: int) -> bytes:
    """A delivery export (JSON array of tasks with shapes) of about `size` bytes."""
    rng = random.Random(7)
    tasks: list[dict[str, Any]] = []
    total = 2
    while total < size:
        shapes = [
            {
                "type": "polygon",
                "index": index,
                "points": [[rng.randint(0, 3000), round(rng.random() * 2000, 2)] for _ in range(8)],
                "tags": {"kind": rng.choice(["van", "car", "truck"]), "occluded": "0"},
            }
            for index in range(20)
        ]
        task = {
            "id": f"{len(tasks):024x}",
            "project_id": 10423,
            "state": "delivered",
            "created_at": "2031-04-09T10:00:00Z",
            "delivered_at": "2031-04-10T08:00:00Z",
            "data": {"image url": f"https://cdn.example/{len(tasks)}.jpg", "image Width": "3264"},
            "answers": {
                "photo": {"layers": {"vector_tagging": [{"group_type": None, "shapes": shapes}]}}
            },
        }
        tasks.append(task)
        total += len(json.dumps(task, separators=(",", ":"))) + 1
    return json.dumps(tasks, separators=(",", ":")).encode()


def options(endpoint: str) -> dict[str, Any]:
    return {
        "endpoint_url": endpoint,
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"region_name": "us-east-1"},
    }


def reader(case: str, endpoint: str, stem: str = "export") -> Any:
    """A function that reads the export as `case` does and returns the result."""
    if case == "boto3":
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        return lambda: json.load(client.get_object(Bucket=BUCKET, Key=f"{stem}.json")["Body"])
    if case == "s3fs":
        import s3fs

        fs = s3fs.S3FileSystem(**options(endpoint))

        def read_s3fs() -> Any:
            with fs.open(f"{BUCKET}/{stem}.json", "rb") as file:
                return json.load(file)

        return read_s3fs
    from libnar.storage import iter_json, read_json

    name = f"{stem}.json.gz" if case.endswith("_gz") else f"{stem}.json"
    url = f"s3://{BUCKET}/{name}"
    if case.startswith("read"):
        return lambda: read_json(url, **options(endpoint))
    return lambda: sum(1 for _ in iter_json(url, **options(endpoint)))


def memory_status(field: str) -> int:
    """A field of /proc/self/status in bytes (VmRSS: resident now; VmHWM: the peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    """Reset VmHWM to the resident memory now (Linux >= 4.0).

    ru_maxrss cannot serve: a child inherits its parent's peak, which here holds the export.
    """
    Path("/proc/self/clear_refs").write_text("5")


def run_case(case: str, endpoint: str, mode: str, repeats: int) -> dict[str, float]:
    """Time `case` (median of `repeats`), or its peak memory (`rss` or `traced`) in one read.

    Every mode first reads a small object the same way (imports, connections, credentials),
    so that only the big read is measured; `rss` and `traced` run in separate processes since
    tracemalloc's own bookkeeping would count in the resident memory.
    """
    reader(case, endpoint, "small")()
    read = reader(case, endpoint)
    gc.collect()
    if mode == "time":
        read()
        gc.collect()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = read()
            times.append(time.perf_counter() - start)
            del result
            gc.collect()
        return {"median_s": statistics.median(times), "min_s": min(times)}
    if mode == "rss":
        reset_peak()
        before = memory_status("VmRSS")
        result = read()
        after = memory_status("VmHWM")
        del result
        return {"rss_peak": float(after - before)}
    tracemalloc.start()
    result = read()
    retained, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return {"traced_peak": float(peak), "traced_retained": float(retained)}


def child(case: str, endpoint: str, mode: str, repeats: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", case, endpoint, mode, str(repeats)],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    import gzip

    from libnar.testing import MotoServer

    size_mb = float(sys.argv[1]) if len(sys.argv) > 1 else 50
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    body = export(int(size_mb * 1_000_000))
    size = len(body)
    with MotoServer() as moto:
        s3 = moto.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="export.json", Body=body)
        s3.put_object(Bucket=BUCKET, Key="export.json.gz", Body=gzip.compress(body, 6))
        small = export(100_000)
        s3.put_object(Bucket=BUCKET, Key="small.json", Body=small)
        s3.put_object(Bucket=BUCKET, Key="small.json.gz", Body=gzip.compress(small, 6))
        del body
        print(f"export: {size / 1e6:.1f} MB on moto's S3 at {moto.endpoint_url}; {repeats} reads")
        rows = {}
        for case in CASES:
            rows[case] = child(case, moto.endpoint_url, "time", repeats)
            print(f"  {case}: {rows[case]['median_s']:.2f} s", flush=True)
        for case in CASES:
            for mode in ("rss", "traced"):
                rows[case] |= child(case, moto.endpoint_url, mode, repeats)
    base = rows["boto3"]
    print(
        f"{'case':10} {'median s':>9} {'vs boto3':>9} {'vs s3fs':>8} {'RSS peak':>9}"
        f" {'vs boto3':>9} {'above result':>13}"
    )
    for case, row in rows.items():
        transient = (row["traced_peak"] - row["traced_retained"]) / size
        print(
            f"{case:10} {row['median_s']:9.2f} {row['median_s'] / base['median_s']:9.2f}"
            f" {row['median_s'] / rows['s3fs']['median_s']:8.2f}"
            f" {row['rss_peak'] / size:8.2f}x {row['rss_peak'] / base['rss_peak']:9.2f}"
            f" {transient:12.2f}x"
        )
    print(
        "RSS peak: peak resident memory over the process's before the read, in object sizes"
        " (the result's Python objects included); above result: tracemalloc's peak minus what"
        " the result keeps, in object sizes."
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, name, url, how, count = sys.argv
        print(json.dumps(run_case(name, url, how, int(count))))
    else:
        main()
