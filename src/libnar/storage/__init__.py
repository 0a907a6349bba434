"""Files for flows on any storage: fsspec filesystems, `UPath`s, JSON, a work folder.

```python
from libnar import storage

fs = storage.filesystem("s3://client-bucket/exports/")      # an fsspec filesystem
tasks = storage.read_json("s3://client-bucket/exports/day.json.gz")
storage.write_json("memory://out/summary.json", {"tasks": len(tasks)})
for task in storage.iter_json("s3://client-bucket/exports/big.json"):   # one at a time
    ...
```

Layer 2: no Prefect. The cloud backends are extras (`libnar[aws]`, `libnar[gcp]`,
`libnar[azure]`) imported when a URL first needs them; credentials come from the call's
options or the `LIBNAR_S3_*`, `LIBNAR_GCS_*`, `LIBNAR_AZURE_*` settings.
"""

from __future__ import annotations

from libnar.storage._errors import (
    MissingExtraError,
    StorageError,
    StorageJSONError,
    StorageURLError,
)
from libnar.storage._filesystems import filesystem, path, storage_options
from libnar.storage._json import iter_json, read_json, write_json
from libnar.storage._workdir import workdir

__all__ = [
    "MissingExtraError",
    "StorageError",
    "StorageJSONError",
    "StorageURLError",
    "filesystem",
    "iter_json",
    "path",
    "read_json",
    "storage_options",
    "workdir",
    "write_json",
]
