"""The small shared kernel of the service: settings, errors as problem details, metrics, the
console, request limits, and database connections. It imports no subject."""
