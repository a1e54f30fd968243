"""Tools around the lab, run from the repository root: the benchmark (`python -m tools.bench`), the load test
(`python tools/load_test.py`), the test server (`tools.streamlit_server`) and the requirements check.

Tools may import `lab`; nothing in `lab` imports tools, and tools never import from tests (tests import tools).
"""
