"""The roof: the composition root (``Phasewatch``) and every surface that faces users.

``http`` (the service), ``cli`` (the ``phasewatch`` command), ``sim`` (replay and demo), and
the glue between the components and ``slo`` / ``alerts``. Nothing outside this package
imports it.
"""
