"""probe"""
from tests.support.media_server import MediaServer
def test_x() -> None:
    assert MediaServer
