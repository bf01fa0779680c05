"""The demo: a sample law-firm workspace, and one of its cases reorganised end to end.

:mod:`airlock.demo.walkthrough` is ``airlock demo`` (the README's first command);
:mod:`airlock.demo.sample` builds the workspace and the plan from the data files in
``data/``; :mod:`airlock.demo.formats` makes the PDFs, Word documents and photos.
"""

from airlock.demo.sample import DEMO_CASE, build_sample_workspace, sample_reorganisation
from airlock.demo.walkthrough import run_demo

__all__ = ["DEMO_CASE", "build_sample_workspace", "run_demo", "sample_reorganisation"]
