"""The ``pixsearch`` command: argument definitions; each command's logic lives in its module."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from botocore.exceptions import EndpointConnectionError, NoCredentialsError

from pixsearch import topology
from pixsearch.config import Settings, get_settings
from pixsearch.logs import configure_cli
from pixsearch.vectorstore.engines import ENGINES

Command = Callable[[argparse.Namespace, Settings], int]


def _up(args: argparse.Namespace, settings: Settings) -> int:
    from pixsearch.runtime.stack import LocalStack, StackOptions

    options = StackOptions(
        endpoint_url=args.endpoint_url,
        api=not args.no_api,
        webapp=not args.no_webapp,
        persist=not args.no_persist,
        reconfigure=args.reconfigure,
        stages=tuple(args.stages.split(",")) if args.stages else None,
    )
    LocalStack(settings, options).run()
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from pixsearch import status
    from pixsearch.runtime.stack import use_running_stack

    use_running_stack(settings)
    state = status.collect(settings)
    print(json.dumps(state, indent=2) if args.json else status.render(state))
    return 0


def _search(args: argparse.Namespace, settings: Settings) -> int:
    from pixsearch.runtime.stack import use_running_stack
    from pixsearch.search import command

    if not args.api_url:
        use_running_stack(settings)
    where = {
        "list": args.list,
        "source_domain": args.source_domain,
        "min_width": args.min_width,
        "min_height": args.min_height,
        "fetched_after": args.fetched_after,
        "fetched_before": args.fetched_before,
    }
    return command.run(
        text=args.text,
        image=args.image,
        k=args.k,
        min_score=args.min_score,
        where={name: value for name, value in where.items() if value is not None},
        mode=args.mode,
        settings=settings,
        api_url=args.api_url,
    )


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from pixsearch.download import ingest
    from pixsearch.runtime.stack import use_running_stack

    use_running_stack(settings)
    return ingest.command(
        file=args.file,
        retry_failed_list=args.retry_failed,
        name=args.name,
        timeout_s=args.timeout,
        settings=settings,
        wait=not args.no_wait,
    )


def _index_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from pixsearch.index import rebuild
    from pixsearch.runtime.stack import use_running_stack

    use_running_stack(settings)
    return rebuild.command(args.model_tag, settings, args.vector_store)


def _index_retrain(args: argparse.Namespace, settings: Settings) -> int:
    from pixsearch.runtime.stack import use_running_stack
    from pixsearch.vectorstore import retrain

    use_running_stack(settings)
    return retrain.command(args.model_tag, settings)


def _model_export(args: argparse.Namespace, settings: Settings) -> int:
    from pixsearch.inference import command

    quantize = None if args.quantize == "none" else args.quantize
    return command.export(settings, destination=args.to, quantize=quantize, force=args.force)


def _index_gc(args: argparse.Namespace, settings: Settings) -> int:
    from pixsearch.index import retention
    from pixsearch.runtime.stack import use_running_stack

    use_running_stack(settings)
    return retention.command(args.model_tag, args.dry_run, settings)


def _dlq_list(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import asdict

    from pixsearch import dlq
    from pixsearch.runtime.stack import use_running_stack

    use_running_stack(settings)
    letters = dlq.list_dead_letters(settings, args.stage)
    print(json.dumps([asdict(x) for x in letters], indent=2) if args.json else dlq.render(letters))
    return 0


def _dlq_redrive(args: argparse.Namespace, settings: Settings) -> int:
    from pixsearch import dlq
    from pixsearch.runtime.stack import use_running_stack

    use_running_stack(settings)
    print(dlq.render_redrive(dlq.redrive(settings, args.stage)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixsearch", description="CLIP image search over S3-compatible object storage."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="run the local stack in the foreground until Ctrl-C")
    up.add_argument(
        "--endpoint-url",
        help="use this S3/SQS endpoint (LocalStack, MinIO, AWS) instead of starting the local "
        "object store; only what is missing there is created",
    )
    up.add_argument(
        "--reconfigure",
        action="store_true",
        help="with an external endpoint: also set the existing queues' attributes and the "
        "bucket's notifications to pixsearch's topology",
    )
    up.add_argument("--no-api", action="store_true", help="do not serve the search API")
    up.add_argument("--no-webapp", action="store_true", help="do not start the web app")
    up.add_argument(
        "--no-persist", action="store_true", help="start empty and keep nothing (all in memory)"
    )
    up.add_argument(
        "--stages",
        metavar="NAMES",
        help="comma-separated stages to run handlers for (default: every installed stage)",
    )
    up.set_defaults(run=_up)

    status = commands.add_parser("status", help="queue depths, DLQs and object counts")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(run=_status)

    search = commands.add_parser(
        "search", help="search the index by text or by an image file, print a table"
    )
    search.add_argument("text", nargs="?", help='what to look for, e.g. "a red car"')
    search.add_argument("--image", type=Path, help="search with this image file instead")
    search.add_argument("-k", type=int, default=5, help="how many results (default 5)")
    search.add_argument("--min-score", type=float, help="drop results scoring below this")
    search.add_argument(
        "--mode",
        choices=("clip", "hybrid"),
        default="clip",
        help="hybrid: also rank by the captions URL lists gave the images (text queries)",
    )
    filters = search.add_argument_group("filters (all must match)")
    filters.add_argument("--list", metavar="NAME", help="only images from this URL list")
    filters.add_argument("--source-domain", metavar="HOST", help="only images from this host")
    filters.add_argument("--min-width", type=int, metavar="PX")
    filters.add_argument("--min-height", type=int, metavar="PX")
    filters.add_argument("--fetched-after", metavar="TIME", help="ISO 8601, e.g. 2026-01-31")
    filters.add_argument("--fetched-before", metavar="TIME", help="ISO 8601")
    search.add_argument(
        "--api-url",
        help="ask this search API instead of searching in this process "
        "(PIXSEARCH_API_AUTH=iam signs the requests with AWS SigV4)",
    )
    search.set_defaults(run=_search)

    ingest = commands.add_parser(
        "ingest",
        help="upload a URL list to urls/, follow it until searchable with progress bars, summarise",
    )
    source = ingest.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "file", nargs="?", type=Path, help="URL list (.txt .csv .tsv .jsonl .parquet, or .gz)"
    )
    source.add_argument(
        "--retry-failed", metavar="LIST", help="re-queue only the failed rows of a finished list"
    )
    ingest.add_argument("--name", help="upload under this name in urls/ (default: file name)")
    ingest.add_argument(
        "--timeout", type=float, help="give up waiting after this many seconds (default: never)"
    )
    ingest.add_argument(
        "--no-wait", action="store_true", help="upload the list and return; follow nothing"
    )
    ingest.set_defaults(run=_ingest)

    index = commands.add_parser("index", help="maintain the search index")
    index_commands = index.add_subparsers(dest="index_command", required=True, metavar="ACTION")
    rebuild = index_commands.add_parser(
        "rebuild", help="rebuild the index from every embedding shard (recovery, model change)"
    )
    rebuild.add_argument(
        "--model-tag", help="the index to rebuild (default: the configured model's)"
    )
    rebuild.add_argument(
        "--vector-store",
        choices=ENGINES,
        help="the engine to build (default: PIXSEARCH_VECTOR_STORE); builds the other "
        "engine's index from the embedding shards, to switch without embedding again",
    )
    rebuild.set_defaults(run=_index_rebuild)

    retrain = index_commands.add_parser(
        "retrain",
        help="train the LanceDB vector index on every row, with no time limit (for a table "
        "past what an index run may train)",
    )
    retrain.add_argument("--model-tag", help="the index to train (default: the configured model's)")
    retrain.set_defaults(run=_index_retrain)

    gc = index_commands.add_parser(
        "gc",
        help="delete index objects no kept manifest references, older than the grace period",
    )
    gc.add_argument("--model-tag", help="the index to clean (default: the configured model's)")
    gc.add_argument("--dry-run", action="store_true", help="list what would go, delete nothing")
    gc.set_defaults(run=_index_gc)

    model = commands.add_parser("model", help="export the model for the ONNX runtime")
    model_commands = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    export = model_commands.add_parser(
        "export",
        help="export the configured model (PIXSEARCH_MODEL/PIXSEARCH_PRETRAINED) to ONNX",
        description="Export image and text encoders to ONNX with the tokenizer and "
        "preprocessing constants; skipped when an export already exists (see --force). "
        "Needs torch and open_clip (pip install 'pixsearch[export]').",
    )
    export.add_argument(
        "--to",
        metavar="DIR_OR_S3_PREFIX",
        help="where exports live (default PIXSEARCH_ONNX_DIR, else {data dir}/models); "
        "the model goes to a folder named by its tag below it",
    )
    export.add_argument(
        "--quantize",
        choices=["int8", "none"],
        default="int8",
        help="also write int8 graphs (onnxruntime dynamic quantization, the default) and "
        "measure them against the source model; with PIXSEARCH_ONNX_PRECISION=auto they run "
        "where every probe vector has cosine >= 0.99 to the source model's",
    )
    export.add_argument("--force", action="store_true", help="export again even if one exists")
    export.set_defaults(run=_model_export)

    dlq = commands.add_parser("dlq", help="dead-lettered messages: list them, send them back")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    dlq_list = dlq_commands.add_parser(
        "list", help="stage, object key(s), receive count and first failure of each dead letter"
    )
    dlq_list.add_argument("--json", action="store_true", help="machine-readable output")
    dlq_list.set_defaults(run=_dlq_list)
    dlq_redrive = dlq_commands.add_parser(
        "redrive", help="move dead letters back to their stage's queue (after fixing the cause)"
    )
    dlq_redrive.set_defaults(run=_dlq_redrive)
    for action in (dlq_list, dlq_redrive):
        action.add_argument(
            "--stage", choices=[spec.name for spec in topology.STAGES], help="only this stage"
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_cli(args.verbose)
    try:
        return args.run(args, get_settings())
    except KeyboardInterrupt:
        return 130
    except (NoCredentialsError, EndpointConnectionError) as error:
        print(
            f"pixsearch {args.command}: {error}. Is the local stack running (`pixsearch up`)? "
            "Otherwise set AWS_ENDPOINT_URL and credentials for your object store.",
            file=sys.stderr,
        )
        return 2
    except Exception as error:  # noqa: BLE001 - one clear line instead of a traceback
        if args.verbose:
            raise
        print(f"pixsearch {args.command}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
