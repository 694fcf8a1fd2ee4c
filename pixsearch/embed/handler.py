"""Lambda entry point of the embed stage (SQS batches of ``images/`` creation events)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pixsearch.config import get_settings
from pixsearch.embed.batch import embed_events
from pixsearch.events import ObjectEvent, process_batch
from pixsearch.inference import load_model
from pixsearch.storage import ObjectStore


def handle(events: Sequence[ObjectEvent]) -> Mapping[str, BaseException]:
    settings = get_settings()
    model = load_model(settings)
    return embed_events(events, ObjectStore.from_settings(settings), model, settings).failures


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_batch(event, context, handle)
