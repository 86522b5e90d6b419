"""MediaNest's benchmarks: MediaNest against a bare aiohttp handler on the same machine.

Run ``python -m bench`` (``--quick`` for a smoke run of a few seconds per scenario); see
``bench/RESULTS.md`` for the latest figures.
"""
