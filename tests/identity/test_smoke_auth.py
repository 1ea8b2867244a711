from tests.identity.tenants import new_tenant


def test_sign_in_and_use(auth_server):
    a = new_tenant(auth_server)
    r = a.get("/api/user")
    assert r.status == 200 and r.json()["id"] == a.user_id
    assert auth_server.get("/api/user").status == 401
