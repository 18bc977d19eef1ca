"""Night analysis for researchers: hypnograms, sleep statistics in AASM report terms, plots and
the one-page night report.

``hypnogram`` and ``statistics`` need numpy only; ``night`` (pandas tables), ``plots`` and
``render`` need the ``report`` extra (pandas, matplotlib), imported when first used.
"""
