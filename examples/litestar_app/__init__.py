"""An existing Litestar app with its own login route, given bastion's envelope."""
