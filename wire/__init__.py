"""The wire contract (PROTOCOL.md) shared by the edge agent and the hub, and nothing else."""
