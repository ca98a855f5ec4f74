"""ButtonBus: evaluators and desk boxes with the away sign (PROTOCOL.md section 3)."""
