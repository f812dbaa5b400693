"""Sign and send one lifecycle event to a running provisioner.

    .venv/bin/python examples/send_event.py service.create 1042 example.com
    .venv/bin/python examples/send_event.py service.suspend 1042

Reads the webhook secret from PROVISIONER_WEBHOOK_SECRETS or instance/.env
(written by `make run`), signs with the standardwebhooks library and waits up
to 10 s for the job (Prefer: wait=10). Extra options: --options '{"Total Mailboxes": 5}',
--password, --reason, --product 12, --url.
"""
import argparse
import datetime as dt
import json
import os
import pathlib
import uuid

import requests
from standardwebhooks.webhooks import Webhook


def webhook_secret() -> str:
    if os.environ.get("PROVISIONER_WEBHOOK_SECRETS"):
        return os.environ["PROVISIONER_WEBHOOK_SECRETS"].split()[0]
    env = pathlib.Path(__file__).resolve().parent.parent / "instance" / ".env"
    for line in env.read_text().splitlines():
        if line.startswith("PROVISIONER_WEBHOOK_SECRETS="):
            return line.split("=", 1)[1].split()[0]
    raise SystemExit("no webhook secret: run `make run` first or set PROVISIONER_WEBHOOK_SECRETS")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("type")
    parser.add_argument("service_id")
    parser.add_argument("domain", nargs="?", default="example.com")
    parser.add_argument("--product", default="12")
    parser.add_argument("--options", default='{"Total Mailboxes": 5, "Mailbox Quota (GB)": 10}')
    parser.add_argument("--password")
    parser.add_argument("--reason", help="suspend reason, e.g. 'Overdue on Payment'")
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    args = parser.parse_args()

    now = dt.datetime.now(dt.timezone.utc)
    body = json.dumps({
        "type": args.type,
        "occurred_at": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "service": {"id": args.service_id, "product_id": args.product, "domain": args.domain,
                    "config_options": json.loads(args.options), "billing_cycle": "monthly",
                    "next_due_date": (now.date() + dt.timedelta(days=30)).isoformat(),
                    **({"password": args.password} if args.password else {}),
                    **({"suspend_reason": args.reason} if args.reason else {})},
        "client": {"id": "77", "email": "owner@" + args.domain, "first_name": "Ada",
                   "last_name": "Lovelace", "company": "Example GmbH", "country": "DE",
                   "address": "Unter den Linden 1", "city": "Berlin", "state": "Berlin",
                   "postcode": "10117", "phone": "+49.3012345678"},
    })
    msg_id = "msg_" + uuid.uuid4().hex
    signature = Webhook(webhook_secret()).sign(msg_id, now, body)
    response = requests.post(f"{args.url}/hooks/v1/events", data=body, timeout=15, headers={
        "content-type": "application/json", "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature,
        "prefer": "wait=10"})
    print(response.status_code, json.dumps(response.json(), indent=2))


if __name__ == "__main__":
    main()
