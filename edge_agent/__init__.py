"""The edge agent: reads hall devices, keeps a durable outbox, publishes signed events over MQTT."""

__version__ = "0.1.0"
