"""The two networks a task can need: one output per text (``sequence``) or one per token
(``token``). Named once here so the options (``config.py``), the tasks and the model
builder (``models/load.py``) all speak of the same two."""
SEQUENCE, TOKEN = "sequence", "token"
NETWORKS = (SEQUENCE, TOKEN)
