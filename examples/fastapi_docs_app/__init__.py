"""FastAPI's /docs and /redoc behind bastion's envelope, served from the app's own origin."""
