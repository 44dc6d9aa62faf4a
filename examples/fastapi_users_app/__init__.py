"""An existing FastAPI app on fastapi-users, given bastion's envelope with its routes untouched."""
