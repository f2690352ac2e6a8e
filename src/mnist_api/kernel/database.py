"""What every store's errors have in common, whatever database is behind it."""


class StoreError(Exception):
    """A store failed in a way the caller cannot fix by changing the request."""


class StoreUnavailableError(StoreError):
    """The backing database cannot be reached or did not answer in time: worth retrying."""
