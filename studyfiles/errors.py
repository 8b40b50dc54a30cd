"""Bad input as one line: ``<field>: <problem> (<fix>)``."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input (a study file, an option, a study directory), naming the field, the
    problem and how to fix it. ``gcnc`` prints it as ``gcnc: error: <line>`` and exits 2."""

    def __init__(self, field: str, problem: str, fix: str = "") -> None:
        self.field, self.problem, self.fix = field, problem, fix
        super().__init__(self.line())

    def __reduce__(self) -> tuple:  # pickled whole, so a trial's error crosses Ray intact
        return type(self), (self.field, self.problem, self.fix)

    def line(self) -> str:
        """The one-line message, without the ``gcnc: error:`` prefix."""
        text = f"{self.field}: {self.problem}"
        return f"{text} ({self.fix})" if self.fix else text


def first_line(err: BaseException) -> str:
    """The first line of an error's message, or its type's name when it has none."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
