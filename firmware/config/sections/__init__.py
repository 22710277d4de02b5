"""One module per configuration area; each defines ``SECTIONS``, a list of ``Section``.

Modules are discovered in name order, so a new service adds its own file here and nothing else.
"""
