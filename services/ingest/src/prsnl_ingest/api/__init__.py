"""HTTP API of the gateway, versioned under /api/v1."""
