"""rt-eeg2fmri: real-time streaming EEG-to-fMRI synthesis."""

from ._logging import logger, set_log_level
from .data import Session

__version__ = "0.1.0"

__all__ = ["Session", "__version__", "logger", "set_log_level"]
