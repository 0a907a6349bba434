"""Typed answers against plain JSON: parsing a 2 MB video answer, converting 10,000 shapes.

1. `Answers.from_json` of a 2 MB video answer (tracked rectangles, a key frame every 10
   frames, SamaHub's per-frame `locations`) against `json.loads` of the same bytes, as a
   ratio (goal: at most 3x). Also `to_dict()` against `json.loads`, and `from_json` of a
   2 MB image answer (many small shapes, every one a model).
2. `to_coco` of 10,000 shapes (rectangles and polygons over 100 images) against the
   `json.loads` of their answers, as a ratio, and per shape.

Each is the best of N runs, with the garbage collector on (as in a flow). CPU time
(`time.process_time`), so other work on a shared machine counts less.
Run: python benchmarks/bench_answers.py
"""

from __future__ import annotations

import gc
import json
import random
import time
from collections.abc import Callable
from typing import Any

from libnar.answers import Answers, ImageRecord, to_coco
from libnar.testing import make_video_answers


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Best CPU time of `repeat` runs, each starting with a collected heap."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best


def video_answer_bytes(target: int = 2_000_000) -> bytes:
    """A video answer of about `target` bytes: 300 frames, a key frame every 10."""
    shapes = 10
    while True:
        body = json.dumps(make_video_answers(shapes=shapes, frames=300, key_every=10)).encode()
        if len(body) >= target:
            return body
        shapes = int(shapes * target / len(body)) + 1


def image_answers(shapes: int, rng: random.Random) -> dict[str, Any]:
    """An image answer: half rectangles, half 6-point polygons, labelled."""
    groups = []
    for index in range(shapes):
        x, y = rng.randint(0, 1800), rng.randint(0, 1000)
        if index % 2:
            points = [[x + rng.randint(0, 90), y + rng.randint(0, 90)] for _ in range(6)]
            shape = {"type": "polygon", "index": index, "points": points}
        else:
            w, h = rng.randint(5, 120), rng.randint(5, 120)
            points = [[x, y], [x + w, y], [x, y + h], [x + w, y + h]]
            shape = {"type": "rectangle", "index": index, "points": points}
        shape["tags"] = {"label": rng.choice(["car", "bus", "person"]), "occluded": "0"}
        groups.append({"group_type": None, "shapes": [shape]})
    return {"image": {"layers": {"vector_tagging": groups}}, "weather": "clear"}


def main() -> None:
    rng = random.Random(11)
    print(f"{'case':<34} {'bytes':>10} {'json.loads':>11} {'libnar':>11} {'ratio':>7}")

    video = video_answer_bytes()
    baseline = best_of(lambda: json.loads(video), 15)
    typed = best_of(lambda: Answers.from_json(video), 15)
    print(
        f"{'parse 2 MB video (goal <= 3x)':<34} {len(video):>10} {baseline * 1e3:>9.1f}ms "
        f"{typed * 1e3:>9.1f}ms {typed / baseline:>6.2f}x"
    )
    answers = Answers.from_json(video)
    dumped = best_of(answers.to_dict, 15)
    print(
        f"{'to_dict 2 MB video':<34} {len(video):>10} {baseline * 1e3:>9.1f}ms "
        f"{dumped * 1e3:>9.1f}ms {dumped / baseline:>6.2f}x"
    )

    image = json.dumps(image_answers(14_000, rng)).encode()
    image_base = best_of(lambda: json.loads(image), 15)
    image_typed = best_of(lambda: Answers.from_json(image), 15)
    print(
        f"{'parse 2 MB image (14,000 shapes)':<34} {len(image):>10} {image_base * 1e3:>9.1f}ms "
        f"{image_typed * 1e3:>9.1f}ms {image_typed / image_base:>6.2f}x"
    )

    per_image = [json.dumps(image_answers(100, rng)).encode() for _ in range(100)]
    records = [
        ImageRecord(Answers.from_json(body), f"{n:04d}.jpg", 1920, 1080)
        for n, body in enumerate(per_image)
    ]
    coco_base = best_of(lambda: [json.loads(body) for body in per_image], 7)
    coco = best_of(lambda: to_coco(records), 7)
    print(
        f"{'to_coco 10,000 shapes (100 images)':<34} {sum(map(len, per_image)):>10} "
        f"{coco_base * 1e3:>9.1f}ms {coco * 1e3:>9.1f}ms {coco / coco_base:>6.2f}x"
        f"  ({coco / 10_000 * 1e6:.1f} us a shape)"
    )


if __name__ == "__main__":
    main()
