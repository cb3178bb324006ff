"""The book: its layout, table of contents and Jupyter Book build (build.py), the browser check of the built
book (check.py), offline MathJax (assets.py). Knows nothing of the study, which calls it."""
