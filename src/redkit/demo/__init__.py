"""The demo shop that ``redkit demo`` runs: every capability in one small FastAPI app.

Each capability is one module (``products`` for the cache, ``auth`` for sessions and
tokens, ``limits`` for rate limiting); ``app.create_app`` wires them together. Run two
processes against one ``REDIS_URL`` to see sessions, limits and invalidations shared.
"""
