"""Browser-facing pages: the conference page (``/client``), its static assets (``/static``).

:class:`meetplatform.web.pages.WebPages` is the surface;
:func:`meetplatform.web.sanitize.sanitize_html` is the allow-list sanitiser for meeting
texts (welcome and moderator-only messages). Nothing is imported here so that importing
the sanitiser does not import Klein.
"""
