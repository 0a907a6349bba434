"""parse_event against json.loads on the same bytes: a 10 KB task and a 2 MB video task.

Prints the best-of-N time of each and the ratio (goal: parse_event at most 2x json.loads).
Run: python benchmarks/bench_events.py
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

from libnar import parse_event


def video_task(shapes: int, frames: int = 3) -> dict[str, Any]:
    """A DPP payload of a video task: `shapes` tracked boxes with per-frame key locations."""
    rng = random.Random(7)
    tracked = [
        {
            "type": "rectangle",
            "index": i,
            "tags": {"label": rng.choice(["car", "truck", "person"]), "occluded": "0"},
            "key_locations": [
                {
                    "frame": f,
                    "points": [[rng.uniform(0, 1920), rng.uniform(0, 1080)] for _ in range(2)],
                }
                for f in range(frames)
            ],
        }
        for i in range(shapes)
    ]
    return {
        "name": "fun69_tracks_ptp",
        "parameters": {"min_box_px": 4},
        "task": {
            "id": "64b7f0c2a1e3d4f5a6b7c8d9",
            "project_id": 10423,
            "round": 1,
            "state": "delivered",
            "created_at": "2023-11-22T18:04:11.052Z",
            "data": {"video_url": "https://assets.example.invalid/v.mp4", "fps": "30"},
            "answers": {"layers": {"vector_tagging": [{"shapes": tracked}]}},
        },
    }


def best_of(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    print(
        f"{'payload':>10} {'bytes':>10} {'json.loads':>12} {'parse_event':>12} {'+key':>12} {'ratio':>7}"
    )
    for label, shapes, repeat in [("10 KB", 25, 2000), ("2 MB", 4800, 30)]:
        body = json.dumps(video_task(shapes)).encode()
        baseline = best_of(lambda b=body: json.loads(b), repeat)
        parsed = best_of(lambda b=body: parse_event(b), repeat)
        keyed = best_of(lambda b=body: parse_event(b).idempotency_key, repeat)
        print(
            f"{label:>10} {len(body):>10} {baseline * 1e3:>10.3f}ms {parsed * 1e3:>10.3f}ms "
            f"{keyed * 1e3:>10.3f}ms {parsed / baseline:>6.2f}x"
        )
        hook = json.dumps({"task": video_task(shapes)["task"]}).encode()
        hook_base = best_of(lambda b=hook: json.loads(b), repeat)
        hook_keyed = best_of(lambda b=hook: parse_event(b).idempotency_key, repeat)
        print(
            f"{label + ' wh':>10} {len(hook):>10} {hook_base * 1e3:>10.3f}ms {'':>12} "
            f"{hook_keyed * 1e3:>10.3f}ms {hook_keyed / hook_base:>6.2f}x (webhook, with key)"
        )


if __name__ == "__main__":
    main()
