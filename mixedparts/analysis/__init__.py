"""Error analysis on top of the metric suite: where a predictions file fails, and whether one file beats another.

``failures`` classifies every GT and predicted segment of an evaluation; ``report`` turns that
into ``report.json`` and ``index.html`` (``html`` renders it, ``gallery`` draws the worst samples);
``paired`` is the paired bootstrap behind ``mixedparts-compare`` (``compare_cli``).
"""
