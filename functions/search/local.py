"""The local search API: Flask under waitress on ``PIXSEARCH_API_HOST``:``PIXSEARCH_API_PORT``
(127.0.0.1:5001), ``PIXSEARCH_API_THREADS`` worker threads.

Cold start in order: the text encoder starts loading first, then the search
service is imported and starts loading the index, then the web framework is
imported. Each later import overlaps the earlier steps' I/O and onnxruntime's
session build, which run without the GIL.
"""

from pixsearch.config import get_settings
from pixsearch.inference import preload
from pixsearch.logs import configure_cli
from pixsearch.search.arenas import limit_malloc_arenas


def main() -> None:
    configure_cli()
    settings = get_settings()
    limit_malloc_arenas(settings.api_malloc_arenas)  # before the warm-up and worker threads
    preload(settings, "text")
    from pixsearch.search.service import SearchService

    service = SearchService(settings)
    service.start_warmup()
    from pixsearch.search.flask_app import create_flask_app
    from pixsearch.search.wsgi_server import api_server

    api_server(create_flask_app(service), settings).server.run()


if __name__ == "__main__":
    main()
