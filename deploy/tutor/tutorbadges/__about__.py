# The worker release this plugin deploys by default (BADGES_VERSION, the image tag).
__version__ = "0.1.0"
