"""Browser-facing pages: the conference page (``/client``), its static assets (``/static``).

:class:`meetplatform.web.pages.WebPages` is the surface. The allow-list sanitiser for
meeting texts is :func:`meetplatform.sanitize.sanitize_html` and the embedding origins are
in :mod:`meetplatform.embedding`: both sit below this package and the signalling package,
which both use them. Nothing is imported here so that importing a module of the package
does not import every page.
"""
