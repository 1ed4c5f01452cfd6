"""MQTT bridge: events out, commands in, a retained status guarded by a last will."""
