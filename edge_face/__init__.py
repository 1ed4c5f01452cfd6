"""Public import name for integrators: `from edge_face.client import Client, AsyncClient`.

The service's code lives in the `edge` package; this thin package gives the client a name
that matches the distribution (`pip install edge-face`) and stays stable if `edge` moves.
"""
