"""Model files (manifest, fetch, verify) and the runtimes that execute them."""
