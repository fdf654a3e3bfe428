"""The web console served by the gateway under ``/_console`` (issue #8).

Modules: ``session`` (signed cookies, CSRF tokens; pure), ``auth`` (login, per-request
session checks, forms), ``status`` (cluster/capacity/redundancy views gathered from the
catalog and live probes), ``web`` (routes and templates), ``mount`` (``ConsoleGateway``:
the S3 gateway app plus the console). Templates are jinja2 (``templates/``); ``static/``
holds the stylesheet, ``console.js`` and the vendored htmx (see ``static/VENDORED.txt``).

This package imports ``gateway.app``; ``gateway.app`` imports ``gateway.console.mount``
lazily, inside ``_serve_one``.
"""

__all__: list[str] = []
