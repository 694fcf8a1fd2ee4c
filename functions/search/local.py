"""The local search API: Flask under waitress on ``PIXSEARCH_API_HOST``:``PIXSEARCH_API_PORT``
(127.0.0.1:5001), ``PIXSEARCH_API_THREADS`` worker threads."""

from pixsearch.config import get_settings
from pixsearch.logs import configure_cli
from pixsearch.search.arenas import limit_malloc_arenas
from pixsearch.search.flask_app import create_flask_app
from pixsearch.search.wsgi_server import api_server

if __name__ == "__main__":
    configure_cli()
    settings = get_settings()
    limit_malloc_arenas(settings.api_malloc_arenas)  # before the warm-up and worker threads
    api_server(create_flask_app(), settings).server.run()
