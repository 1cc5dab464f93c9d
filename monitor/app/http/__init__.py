"""The HTTP surface: API handlers, OpenAPI, readiness, authentication and the server.

The only package that imports Starlette and uvicorn.
"""

from monitor.app.http.server import bind_socket, create_app, make_server, serve, serving

__all__ = ["bind_socket", "create_app", "make_server", "serve", "serving"]
