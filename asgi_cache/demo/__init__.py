"""The demo users service behind ``asgi-cache demo`` (needs the ``demo`` extra).

See `asgi_cache.demo.app` for the service and `asgi_cache.demo.run` for the
command that measures it with and without the cache.
"""
