"""One session serves concurrent requests correctly."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import imagegen
import requests


def test_parallel_requests_all_correct(service) -> None:
    photos = [imagegen.ZEBRAS[0], imagegen.ELEPHANTS, imagegen.ZEBRAS[1], imagegen.ELEPHANTS] * 4
    expected = {imagegen.ZEBRAS[0]: {"zebra"}, imagegen.ZEBRAS[1]: {"zebra"}}
    expected[imagegen.ELEPHANTS] = {"African elephant", "tusker", "Indian elephant"}

    def classify(path):
        with requests.post(f"{service.url}/image", data=path.read_bytes(), timeout=60) as response:
            return path, response.status_code, response.json()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(classify, photos))
    assert len(results) == 16
    reference = {}
    for path, status, body in results:
        assert status == 200
        assert body["predictions"][0]["tagName"] in expected[path]
        reference.setdefault(path, body["predictions"][:5])
        # The same photo gets the same scores whichever thread scored it.
        assert body["predictions"][:5] == reference[path]
    assert len({body["id"] for _, _, body in results}) == 16
