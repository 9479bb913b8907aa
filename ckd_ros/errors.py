"""One exception type for user-facing failures: the message says what was wrong and what to do."""


class CKDError(Exception):
    """A failure caused by input or environment (bad checkpoint, missing GPU, wrong path...).

    CLIs print it as one line and exit non-zero; the node logs it and keeps serving.
    """
