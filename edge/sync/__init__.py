"""Fleet sync: boxes replicate their galleries through a hub (star topology).

`record` is the pure, deterministic merge used on both sides, `codec` the compact wire,
`hubstore` the hub's storage interface, `hub` its HTTP routes and `worker` the box's task.
"""
