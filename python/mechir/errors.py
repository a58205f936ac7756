"""The reader's one exception type: every message starts with the file it is about."""


class MechirFormatError(ValueError):
    """A file that is not what mechir writes (truncated, damaged, another format or version).

    path is the file, str(err) is "PATH: what is wrong"."""

    def __init__(self, path, message):
        self.path = str(path)
        super().__init__("%s: %s" % (self.path, message))
