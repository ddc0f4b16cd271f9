"""What the interop scripts count as a warning: python `warnings` and log records at WARNING or above
from any logger (transformers logs its load reports there), caught while a block runs.

    with Caught() as caught:
        ...
    caught.messages  # ["UserWarning: ...", "transformers.modeling_utils: ..."]
"""
import logging
import warnings


class Caught(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []
        self._warnings = None

    def emit(self, record):
        self.messages.append(f"{record.name}: {record.getMessage()}")

    def __enter__(self):
        logging.getLogger().addHandler(self)
        try:
            import transformers

            transformers.logging.set_verbosity_warning()
            transformers.logging.get_logger().addHandler(self)
        except ImportError:
            pass
        self._warnings = warnings.catch_warnings(record=True)
        self._caught = self._warnings.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._warnings.__exit__(*exc)
        self.messages += [f"{w.category.__name__}: {w.message}" for w in self._caught]
        logging.getLogger().removeHandler(self)
        return False
