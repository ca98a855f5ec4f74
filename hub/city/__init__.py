"""Many halls in one city: `hall-hub run --config city.toml` on several machines.

The hall is the partition: each hall has exactly one writer at a time, whichever worker holds its
PostgreSQL advisory lock (hub/city/locks.py); workers balance the halls between them
(hub/city/worker.py); the config lists the halls (hub/city/config.py).
"""
