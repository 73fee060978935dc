"""The revisions, one file each: ``<rev>_<slug>.py``."""
