"""The HTTP plumbing every view shares: errors, bodies and shapes, CORS, observability, metrics, OpenAPI."""
