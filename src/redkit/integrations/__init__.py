"""Framework glue: ASGI (Starlette/FastAPI), Flask and Django.

Each framework is a subpackage with one module per capability; integrations call the
capabilities and never the other way round. Framework packages are optional extras and
are imported only when a module here is used.
"""
