"""Hostile input against every route of the example app, on a real server and both databases."""
