"""The page's Streamlit code: state (widgets <-> RunConfig <-> URL), runs (submit, cancel, poll), sections.

May import Streamlit and `lab`; never TensorFlow (the page paints before it loads), and `lab`
never imports this package.
"""
