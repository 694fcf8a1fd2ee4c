"""When each stage ran during an ingest, read from the local stack's log."""

from __future__ import annotations

import re
import time
from pathlib import Path

DISPATCHED = re.compile(
    r"^(\d\d):(\d\d):(\d\d) .*stage (\w+): (\d+) records, \d+ failed, ([\d.]+)s$"
)


def stage_timeline(log_path: Path, started_at: float, searchable_s: float) -> dict[str, float]:
    """Seconds after the upload (the log's clock has whole seconds): when the first embed
    batch started, how long embed batches ran (at least one; two at once), when the last
    embed batch and the last index run ended, and when all was searchable."""
    time.sleep(0.5)  # the log copier's last lines
    day = time.localtime(started_at)
    midnight = time.mktime((day.tm_year, day.tm_mon, day.tm_mday, 0, 0, 0, 0, 0, -1))
    runs: dict[str, list[tuple[float, float]]] = {}
    for line in log_path.read_text().splitlines():
        match = DISPATCHED.match(line)
        if match and float(match.group(6)) >= 0.01:  # not the start's empty test events
            hours, minutes, seconds, stage, _, duration = match.groups()
            end = midnight + 3600 * int(hours) + 60 * int(minutes) + int(seconds) + 0.5
            runs.setdefault(stage, []).append(
                (end - float(duration) - started_at, end - started_at)
            )
    embeds = runs.get("embed", [])
    edges = sorted([(a, 1) for a, _ in embeds] + [(b, -1) for _, b in embeds])
    busy = overlapped = 0.0
    running, since = 0, 0.0
    for at, step in edges:
        busy += (at - since) * (running >= 1)
        overlapped += (at - since) * (running >= 2)
        running, since = running + step, at
    return {
        "download_end": round(max((b for _, b in runs.get("download", [])), default=0), 1),
        "first_embed_start": round(min((a for a, _ in embeds), default=0), 1),
        "embed_batches": len(embeds),
        "embed_running": round(busy, 1),
        "two_embeds_running": round(overlapped, 1),
        "last_embed_end": round(max((b for _, b in embeds), default=0), 1),
        "last_index_end": round(max((b for _, b in runs.get("index", [])), default=0), 1),
        "searchable": round(searchable_s, 1),
    }
