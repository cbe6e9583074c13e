"""The ``mind-engine`` sub-commands, one module each (``match``, ``interpolate``, ``demo``,
``bench``, ``train``; ``match-pairs``/``match-video`` are ``mind_engine.batch.cli``, ``export``
is ``mind_engine.backends.cli``): each has ``add_parser`` and ``run``, and ``mind_engine.cli``
assembles them into one parser and one ``main``. What several share is in ``common``."""
