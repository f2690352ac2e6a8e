"""Who owns a prediction, where subjects must agree on it."""

# The owner of predictions made without a key: with authentication off, and every prediction
# stored before keys existed (the migrations give them this owner). Key ids never take this form.
ANONYMOUS_OWNER = "anonymous"
