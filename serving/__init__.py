"""callqa.serving: what runs behind `callqa serve` and the web app. Never imports torch.

What lives here: ``service.py`` (the BentoML service: /score and the routes it mounts, read like the API it serves);
the HTTP edge — ``middleware.py`` (keys, roles, limits, strict paths), ``params.py`` (strict query parameters),
``openapi.py`` (the spec, built from the same models the handlers parse with); the review and appeal APIs
(``review_api.py`` models and operations, ``review_routes.py`` handlers, ``appeal_api.py``); ``explainer.py``
(bounded evidence work below /score); ``store/`` (everything kept in the database, behind its API, with the score of
record and the migrations); ``store_sink.py`` (the review store as a sink of ``callqa score`` and /score);
``report/`` (the QA report: sections in a registry, one renderer per format); ``agreement.py``; ``directory.py``
(agent names and teams); the CLIs (``cli.py``, ``keys_cli.py``, ``reviews_cli.py``, ``db_cli.py``); ``ui/`` (the
web app: plain JS that renders what the API describes).

What it may import: the torch-free core (``callqa.*``) and its serving libraries. Only ``store/`` opens database
sessions or names tables (tests/test_code_shape.py). See docs/architecture.md.
"""
