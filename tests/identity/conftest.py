from tests.identity.fixtures import auth_server  # noqa: F401  (fixture)
