"""How much one request may ask for: one set of limits for the API document that
states them and for the code that enforces them."""

DEFAULT_LIMIT = 100          # items per page when a request does not say
MAX_LIMIT = 1000             # items per page at most (records, decisions, facts, notifications)
MAX_CLOCKS = 10 * MAX_LIMIT  # running clocks in one answer at most (GET /v1/clocks)
MAX_BATCH = 10_000           # facts in one POST at most
MAX_BODY = 16 * 1024 * 1024  # bytes of one request body by default (``slm serve --max-body``)
MAX_VALUES = 1_000_000       # JSON values one body may hold (10,000 facts of 100 values)
