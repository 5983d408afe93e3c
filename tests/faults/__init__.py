"""The fault suite: faults injected while captures are in flight, and what must hold after."""
