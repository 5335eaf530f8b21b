"""Errors the command line reports as one line, without a traceback."""


class UserError(Exception):
    """Bad input from the user: the message names what was wrong and what was expected.

    The CLI prints it as ``rnnkit: error: <message>`` and exits with status 2.
    """


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was.

    One class for every training loop (language model, classifier, forecaster), so one
    ``except TrainingDiverged`` catches them all.
    """
