"""The `edge-face` commands: one module per command, each `add_arguments(p)` + `run(...)`.

Commands sit at the top of the import graph: they may use every layer below (services,
vision, store, runtime), and nothing in the product imports them back.
"""
