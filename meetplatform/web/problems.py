"""What the HTML pages say for the problems :mod:`meetplatform.httpkit` reports.

The conference pages, the invitation pages and the embed pages answer a refused URL, an
unknown address or a failure with the same words (each in its own page frame); only the
"method not allowed" text, and for some surfaces the "not found" page, differ, and those
the surface words itself before falling back on :data:`PAGE_WORDS`.
"""

from __future__ import annotations

from meetplatform.httpkit import HttpProblem, Problem

__all__ = ["PAGE_WORDS", "page_words"]

#: (title, text) of the HTML page for each problem.
PAGE_WORDS: dict[Problem, tuple[str, str]] = {
    Problem.NOT_FOUND: ("Page not found", "There is no page at this address."),
    Problem.METHOD_NOT_ALLOWED: ("Method not allowed",
                                 "This page can only be opened, not posted to."),
    Problem.URI_TOO_LONG: ("Link too long", "This address is too long to be a meeting link."),
    Problem.PATH_NOT_UTF8: ("Bad address", "This address is not valid."),
    Problem.QUERY_NOT_UTF8: ("Bad address", "This address is not valid."),
    Problem.INVALID: ("Request refused", "The request could not be handled."),
    Problem.FAILED: ("Something went wrong", "The page could not be shown. Please try again."),
}


def page_words(problem: HttpProblem) -> tuple[str, str]:
    """The (title, text) of the page answering ``problem``."""
    return PAGE_WORDS[problem.problem]
