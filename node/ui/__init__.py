"""The local web interface, `mirror ui`: a third front end beside the CLI and the REPL.

- ``security``: the launch token, sessions, Host/Origin/CSRF checks, the CSP.
- ``asgi``: requests, responses and routes in plain ASGI.
- ``server``: the routes, and serving them with hypercorn on trio.
- ``backend``: the one seam to the node: operations returning JSON-ready data.
- ``journal_view``: the timeline, search and filters, fast over 10,000 reflections.
- ``push``: what changed in the home, pushed to open pages (server-sent events).
- ``run``: the ``mirror ui`` command itself.
- ``static/``: every asset the page loads (no CDN, no third-party request).
"""
