"""The local search API: Flask on ``PIXSEARCH_API_HOST``:``PIXSEARCH_API_PORT`` (127.0.0.1:5001)."""

from pixsearch.config import get_settings
from pixsearch.logs import configure_cli
from pixsearch.search.flask_app import create_flask_app

if __name__ == "__main__":
    configure_cli()
    settings = get_settings()
    create_flask_app().run(host=settings.api_host, port=settings.api_port, threaded=True)
