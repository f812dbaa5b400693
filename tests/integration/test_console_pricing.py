"""The console's price table page, on the ResellerClub simulator (the admin API's pricing fixtures)."""
from __future__ import annotations

import re

from provisioner import apikeys
from tests.integration.test_console import sign_in
from tests.integration.test_pricing import products_env, rc_sim  # noqa: F401


def test_price_table_page_of_resellerclub(client, runtime, rc_sim):  # noqa: F811
    with runtime.db.transaction() as session:
        _, key = apikeys.create_api_key(session, "pricing-viewer", "read")
    assert sign_in(client, key).status_code == 303
    response = client.get("/admin/upstreams/resellerclub/pricing")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "enterpriseemailin" in html and "6-10" in html and "renew" in html
    rows = re.findall(r'<td data-label="Product">', html)
    assert len(rows) > 10
    assert "dev-resellerclub-key" not in html
