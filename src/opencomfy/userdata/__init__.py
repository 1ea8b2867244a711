"""Per-user data: the user list, settings (`comfy.settings.json`) and userdata files.

Plain Python, no HTTP. Every path a client names is confined to the user's own folder
(`<user_dir>/<user id>`).
"""
