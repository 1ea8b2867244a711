"""Files on disk: the input/output/temp folders, uploads, image renditions and media probing.

Plain Python, no HTTP: the routes in `opencomfy.http.files*` call these functions and map
their errors (`UnsafePath`, `MediaError`, ...) to each operation's error shape.
"""
