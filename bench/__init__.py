"""The benchmark: the API against a bare baseline, under wrk (``python bench/run.py``)."""
