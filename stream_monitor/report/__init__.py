"""The HTML report: what a replay, the demo or the service's alerts say about each model, as one page.

``model`` builds the report's data from records (alerts, window statistics, dead letters) and the reference
profiles: pure, no files. ``render`` draws it as one self-contained HTML page (matplotlib, inline SVG).
"""
