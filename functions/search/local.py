"""The local search API: Flask under waitress on ``PIXSEARCH_API_HOST``:``PIXSEARCH_API_PORT``
(127.0.0.1:5001), ``PIXSEARCH_API_THREADS`` worker threads; start-up order in
:mod:`pixsearch.search.startup`.
"""

from pixsearch.config import get_settings
from pixsearch.logs import configure_cli
from pixsearch.search.startup import start_search_service


def main() -> None:
    configure_cli()
    settings = get_settings()
    service = start_search_service(settings)
    from pixsearch.search.flask_app import create_flask_app
    from pixsearch.search.wsgi_server import api_server

    api_server(create_flask_app(service), settings).server.run()


if __name__ == "__main__":
    main()
