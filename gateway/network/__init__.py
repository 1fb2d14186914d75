"""Network-based location: the wiremap (subnets, access points, switches, ports) and its lookup.

The domain only: parsing and canonical forms of network identities, the in-memory index that
resolves a device's observations to a wiremap entry, and the CSV form of the wiremap. No I/O
beyond what callers hand in; imports neither Starlette nor httpx.
"""
