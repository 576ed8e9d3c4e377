"""Support code for the executable book: notebook parameters, the zoo as the notebooks see it,
plotting style, and the offline plotly renderer used when the book is built.

Notebooks stay thin: each validates its papermill parameters with ``book_context`` and then
calls the analysis functions of the package.
"""

from .context import BookContext, ParameterError, book_context, check_choice, check_int, check_float

__all__ = ["BookContext", "ParameterError", "book_context", "check_choice", "check_int",
           "check_float"]
