"""flawscope: deep-learning flaw detection in industrial X-ray and surface images."""

__version__ = "0.1.0"
