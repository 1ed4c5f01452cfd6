"""Test support shared by every test folder: servers, the MQTT broker, photos, settings.

A real package (imported as `tests.support.*`), so no test or conftest edits `sys.path`
to reach a helper that lives in another folder.
"""
