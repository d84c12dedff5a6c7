"""perdure over HTTP: Durable Functions' management API, an HTTP starter and user routes.

Needs the ``http`` extra (``pip install 'perdure[http]'``). Holds no engine logic: every
route parses the request, calls the client and shapes the response.

>>> from perdure.http import create_asgi_app, resolve_api_key   # doctest: +SKIP
>>> key, _ = resolve_api_key(app.store)                           # doctest: +SKIP
>>> asgi = create_asgi_app(app, api_key=key)                      # doctest: +SKIP
"""

from perdure.http.asgi import create_asgi_app
from perdure.http.auth import resolve_api_key
from perdure.http.client import BASE_PATH, DurableHttpClient

__all__ = ["BASE_PATH", "DurableHttpClient", "create_asgi_app", "resolve_api_key"]
