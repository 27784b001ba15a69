"""Errors a user can cause. The CLI prints their message alone and exits with code 2."""


class UserError(Exception):
    """A mistake the user can fix: the message names the field or file and the fix."""


class ConfigError(UserError):
    """An invalid configuration value, key or file."""
