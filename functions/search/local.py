"""The local search API: Flask on ``PIXSEARCH_API_HOST``:``PIXSEARCH_API_PORT`` (127.0.0.1:5001)."""

from pixsearch.config import get_settings
from pixsearch.search.flask_app import create_flask_app

app = create_flask_app()

if __name__ == "__main__":
    app.run(host=get_settings().api_host, port=get_settings().api_port, threaded=True)
