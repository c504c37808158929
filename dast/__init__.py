"""Black-box security scans (sqlmap, Wapiti) of the demo, or of an app, served as a real process.

Run by ``nox -s dast``; ``python -m dast --help`` lists the options. Not part of the package.
"""
