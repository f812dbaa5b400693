"""Two billing systems against one provisioner, with real processes: the environment's
default source and a billing.yaml source, each signing with its own secret and
receiving its own signed callbacks over HTTP."""
from __future__ import annotations

import shutil
import time

import pytest
import requests

from provisioner.devsetup import new_webhook_secret
from tests.e2e.procs import ROOT, wait_until
from tests.helpers import event_body
from tests.integration.test_notifications import receiver  # noqa: F401  (a verifying callback receiver)

pytestmark = pytest.mark.e2e


def test_two_sources_one_service_id_two_accounts_and_callbacks_to_their_own(make_stack, tmp_path, receiver):
    configs = tmp_path / "configs"
    shutil.copytree(ROOT / "product_configs", configs)
    (configs / "billing.yaml").write_text(
        "brand-b:\n"
        "  webhook_secrets: ${BRAND_B_WEBHOOK_SECRETS}\n"
        "  callback_url: ${BRAND_B_CALLBACK_URL}\n"
        "  callback_secret: ${BRAND_B_CALLBACK_SECRET}\n"
        "  lifecycle_authority: billing\n")
    brand_secret = new_webhook_secret()
    stack = make_stack(products_dir=configs, extra_env={
        "BRAND_B_WEBHOOK_SECRETS": brand_secret, "BRAND_B_CALLBACK_URL": receiver.url,
        "BRAND_B_CALLBACK_SECRET": receiver.secret, "PROVISIONER_NOTIFY_INTERVAL": "0.5"})

    first = stack.post(event_body("service.create", "5001", domain="main-brand.example"))
    second = stack.post(event_body("service.create", "5001", domain="second-brand.example"), secret=brand_secret)
    assert (first.status_code, second.status_code) == (202, 202), (first.text, second.text)
    assert (first.json()["source"], second.json()["source"]) == ("default", "brand-b")
    for answer in (first, second):
        assert stack.wait_job(answer.json()["job"]["id"])["state"] == "succeeded"
    domains = {acc["native"]["external_id"]: acc["domain"] for acc in stack.live_accounts()}
    assert domains == {"5001": "main-brand.example", "brand-b:5001": "second-brand.example"}

    # The brand's outcome reaches the brand's receiver, signed with its secret; nothing else does.
    delivered = wait_until(lambda: receiver.delivered(), timeout=30, what="the job.succeeded callback",
                           alive=stack.check_alive)
    assert [(b["type"], b["service_id"], b["source"]) for b in delivered] == [("job.succeeded", "5001", "brand-b")]
    assert delivered[0]["data"]["job_id"] == second.json()["job"]["id"]
    time.sleep(1.0)                               # a further tick delivers nothing more
    assert len(receiver.requests) == 1 and receiver.requests[0]["verified"]

    # A create from the brand for its live service with another domain is refused at the door.
    conflict = stack.post(event_body("service.create", "5001", domain="typo.example"), secret=brand_secret)
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "service_exists"

    # Validation answers as the hook would and stores nothing.
    raw, headers = stack.signed(event_body("service.create", "5001", domain="typo.example"), secret=brand_secret)
    judged = requests.post(f"{stack.base_url}/hooks/v1/events/validate", data=raw, headers=headers, timeout=10)
    assert judged.status_code == 409 and judged.json() == conflict.json()
    assert stack.count("events") == 2
