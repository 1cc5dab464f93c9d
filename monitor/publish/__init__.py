"""\"Data available\" events: a CloudEvent (and an OpenLineage RunEvent) per completed phase.

Import from the modules: ``publisher`` (``Publisher``, ``install_publisher(host, checks)``),
``cloudevent`` (the event and its Pub/Sub attributes), ``lineage`` (the RunEvent),
``senders`` (Pub/Sub, OpenLineage, in-memory), ``store``, and ``config`` (its configuration
models). This file re-exports nothing: the root config imports ``monitor.publish.config``,
and loading that must not load the component's runtime.
"""
