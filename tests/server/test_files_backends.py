"""Every file and user route once against each database backend (the `server` fixture runs
SQLite, and PostgreSQL when .ci/run started one). The routes keep their data on disk, so this
proves they work beside either database; the detailed tests run on one shared server."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from tests.files.factories import decode, gradient_alpha_png, multipart, png_bytes, write_video


def test_every_route_answers(server):
    base = server.base_dir
    body, hdrs = multipart({"type": "input"}, {"image": ("b.png", png_bytes(16, 4), "image/png")})
    assert server.post("/api/upload/image", data=body, headers=hdrs).json()["name"] == "b.png"
    ref = json.dumps({"filename": "b.png", "type": "input"})
    body, hdrs = multipart({"type": "input", "original_ref": ref},
                           {"image": ("clipspace-mask-5.png", gradient_alpha_png(16, 4), "image/png")})
    assert server.post("/upload/mask", data=body, headers=hdrs).status == 200
    view = server.get("/api/view?" + urlencode({"filename": "clipspace-mask-5.png", "type": "input",
                                                "channel": "a"}))
    assert decode(view.body).getchannel("A").getpixel((15, 0)) == 240
    assert server.get("/view?" + urlencode({"filename": "b.png [input]", "res": "64"})).status == 200
    assert server.get("/api/files/mask-layers?filename=clipspace-mask-5.png").json()["mask"] == "clipspace-mask-5.png"
    write_video(base / "input" / "v.mp4", frames=4, fps=2, size=(16, 16))
    assert server.get("/api/vhs/queryvideo?filename=v.mp4").json()["source"]["frames"] == 4
    assert "checkpoints" in server.get("/api/models").json()
    assert server.get("/api/models/checkpoints").json() == []
    assert server.get("/api/embeddings").status == 200
    assert any(f["name"] == "checkpoints" for f in server.get("/api/experiment/models").json())
    assert server.get("/api/experiment/models/checkpoints").json() == []
    assert server.get("/api/users").json()["storage"] == "server"
    assert server.post("/api/settings", {"Backends.A": 1}).json()["Backends.A"] == 1
    assert server.post("/api/settings/Backends.B", 2).status == 200
    assert server.get("/api/settings/Backends.B").json() == 2
    assert server.post("/api/userdata/backends%2Fx.json", data=b"{}").json() == "backends/x.json"
    assert server.get("/api/userdata?dir=backends").json() == ["x.json"]
    assert server.get("/api/userdata/backends%2Fx.json").body == b"{}"
    assert server.post("/api/userdata/backends%2Fx.json/move/backends%2Fy.json").status == 200
    assert server.get("/api/v2/userdata?path=backends").json()[0]["name"] == "y.json"
    assert server.request("DELETE", "/api/userdata/backends%2Fy.json").status == 204
