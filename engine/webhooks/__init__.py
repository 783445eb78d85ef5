"""Tools' webhooks in: a payload translated into facts by a ``kind: Mapping`` (translate.py),
after its signature was verified the way its vendor signs (signatures.py)."""
