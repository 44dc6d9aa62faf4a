"""Apps that adopt bastion: the way a team with an existing app would (see the README)."""
