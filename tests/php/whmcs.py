"""Runs the WHMCS module (hooks/whmcs/modules/servers/provisioner) with real ``php``.

Each :meth:`Whmcs.call` is one ``php tests/php/drivers/call_module.php`` process — one
WHMCS request — given realistic WHMCS ``$params``. The driver stubs only WHMCS's own
functions (``logModuleCall``, ``localAPI``, ``logActivity``, ``encrypt``/``decrypt``,
``add_hook``), classes (``WHMCS\\Module\\Server``, the menu, usage billing) and its
database layer (``WHMCS\\Database\\Capsule``, over a JSON file shared by the processes of
one test, and by the callback receiver that ``php -S`` serves for the test module).
"""
from __future__ import annotations

import datetime as dt
import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import requests
from standardwebhooks.webhooks import Webhook

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "hooks" / "whmcs" / "modules" / "servers" / "provisioner" / "provisioner.php"
DRIVER = Path(__file__).resolve().parent / "drivers" / "call_module.php"
STUBS = Path(__file__).resolve().parent / "drivers" / "whmcs_stubs.php"
LIFECYCLE = ("CreateAccount", "SuspendAccount", "UnsuspendAccount", "TerminateAccount", "ChangePackage",
             "ChangePassword", "Renew")
WELCOME = "Hosting Account Welcome Email"


def encrypt(value: str) -> str:
    """The stand-in's WHMCS encryption (whmcs_stubs.php encrypt())."""
    import base64
    return "whmcs-encrypted:" + base64.b64encode(value[::-1].encode()).decode()


def decrypt(value: str) -> str:
    import base64
    return base64.b64decode(value.removeprefix("whmcs-encrypted:")).decode()[::-1]


def php_binary() -> str | None:
    return shutil.which("php")


@functools.lru_cache(maxsize=1)
def php_problem() -> str | None:
    """Why the module cannot run here (no php, no curl extension), or None."""
    php = php_binary()
    if php is None:
        return "php is not installed (Debian: apt-get install php-cli php-curl)"
    check = subprocess.run([php, "-r", 'echo PHP_VERSION, " ", function_exists("curl_init") ? "curl" : "no-curl";'],
                           capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        return f"php does not run: {check.stderr.strip()}"
    version, _, curl = check.stdout.strip().partition(" ")
    if tuple(int(p) for p in version.split(".")[:2]) < (8, 1):
        return f"php {version} is older than 8.1"
    if curl != "curl":
        return "php's curl extension is missing (Debian: apt-get install php-curl)"
    return None


@functools.lru_cache(maxsize=1)
def bare_php_args() -> tuple[str, ...]:
    """``php -n`` (no ini: no shared extensions) plus the curl extension unless compiled in."""
    modules = subprocess.run([php_binary() or "php", "-n", "-m"], capture_output=True, text=True, timeout=30).stdout
    return ("-n",) if "curl" in modules.split() else ("-n", "-d", "extension=curl")


def add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    days = [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    return dt.date(year, month, min(day.day, days[month - 1]))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def post_callback(stack, body: dict, *, msg_id: str | None = None, secret: str | None = None,
              timestamp: dt.datetime | None = None) -> requests.Response:
    """POST a callback to the stack's WHMCS callback receiver, signed as the provisioner signs
    its callbacks (Standard Webhooks, the source's callback secret unless ``secret``)."""
    raw = json.dumps(body)
    msg_id = msg_id or "ntf_" + uuid.uuid4().hex
    when = timestamp or dt.datetime.now(dt.timezone.utc)
    signature = Webhook(secret or stack.callback_secret).sign(msg_id, when, raw)
    return requests.post(stack.callback_url, data=raw, timeout=30, headers={
        "content-type": "application/json", "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())), "webhook-signature": signature})


class PhpError(AssertionError):
    pass


class Whmcs:
    """One WHMCS installation's view: a server entry, the stub files, module calls."""

    def __init__(self, stack, workdir: Path, *, server_id: int = 3):
        self.stack = stack
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_file = workdir / "module-log.jsonl"
        self.activity_file = workdir / "activity-log.jsonl"
        self.localapi_file = workdir / "localapi.jsonl"
        self.db_file = workdir / "whmcs-db.json"
        self.server_id = server_id
        self.passwords: set[str] = set()      # every password given to the module, for leak checks

    # --- WHMCS's $params --------------------------------------------------------------------
    def server(self, **overrides: Any) -> dict[str, Any]:
        """The server's fields as WHMCS passes them (Hostname, Port, Password, Access Hash)."""
        server = {
            "server": True,
            "serverid": self.server_id,
            "serverip": "",
            "serverhostname": "127.0.0.1",
            "serverusername": getattr(self.stack, "callback_secret", ""),
            "serverpassword": self.stack.webhook_secret,
            "serverport": str(self.stack.web_port),
            "serversecure": False,
            "serverhttpprefix": "http",
            "serveraccesshash": self.stack.admin_key,
        }
        server.update(overrides)
        return server

    def params(self, service_id: str, domain: str, *, pid: str = "12", options: dict | None = None,
               password: str = "Initial-Pw-2026x", username: str | None = None, wait: str = "20",
               custom_fields: dict | None = None, status: str = "Active", client: dict | None = None,
               **extra: Any) -> dict[str, Any]:
        """Realistic module parameters (WHMCS 8.x ModuleParams)."""
        self.passwords.add(password)
        options = {"Total Mailboxes": 5, "Total Enhanced Mailboxes": 0, "Mailbox Quota (GB)": 10,
                   "Total Aliases": 2, "Total Distribution Lists": 1} if options is None else options
        details = {
            "userid": 77, "id": 77, "uuid": "5b0c1a4e-3f1e-4a8e-9d2b-77a1b2c3d4e5",
            "firstname": "Ada", "lastname": "Lovelace", "fullname": "Ada Lovelace",
            "companyname": "Example GmbH", "email": f"owner@{domain}",
            "address1": "Unter den Linden 1", "address2": "Aufgang B", "city": "Berlin",
            "fullstate": "Berlin", "state": "Berlin", "postcode": "10117",
            "countrycode": "DE", "country": "DE", "countryname": "Germany",
            "phonecc": 49, "phonenumber": "3012345678", "phonenumberformatted": "+49.3012345678",
            "telephoneNumber": "+49.3012345678", "tax_id": "", "billingcid": 0, "notes": "",
            "twofaenabled": False, "currency": 1, "defaultgateway": "", "cctype": "", "cclastfour": "",
            "gatewayid": "", "securityqid": 0, "securityqans": "", "groupid": 0, "status": "Active",
            "credit": "0.00", "taxexempt": False, "latefeeoveride": False, "overideduenotices": False,
            "separateinvoices": False, "disableautocc": False, "emailoptout": False,
            "marketing_emails_opt_in": False, "overrideautoclose": False, "allowSingleSignOn": 1,
            "language": "german", "lastlogin": "No Login Logged",
        }
        details.update(client or {})
        params: dict[str, Any] = {
            "whmcsVersion": "8.10.1-release.1",
            "accountid": int(service_id), "serviceid": int(service_id), "addonId": 0,
            "userid": 77, "domain": domain, "username": username if username is not None else "",
            "password": password, "packageid": int(pid), "pid": int(pid), "serverid": self.server_id,
            "status": status, "type": "other", "producttype": "other", "moduletype": "provisioner",
            "configoption1": wait, "configoption2": "",
            **{f"configoption{i}": "" for i in range(3, 25)},
            "customfields": custom_fields if custom_fields is not None else {"Notes for support": ""},
            "configoptions": options,
            "clientsdetails": details,
        }
        params.update(self.server())
        params.update(extra)
        return params

    # --- running the module -----------------------------------------------------------------
    def stub_config(self, localapi: str = "success", module: Path = MODULE) -> dict[str, Any]:
        return {"log_file": str(self.log_file), "activity_file": str(self.activity_file),
                "localapi_file": str(self.localapi_file), "db_file": str(self.db_file),
                "localapi": localapi, "module": str(module), "stubs": str(STUBS)}

    def call(self, function: str, params: dict[str, Any], *, model: dict | None | bool = True,
             model_dates: str = "string", localapi: str = "success", bare: bool = False,
             timeout: float = 120, area: str = "client", post: dict | None = None,
             menu_context: dict | None = None, register: bool = True) -> Any:
        """``provisioner_<function>($params)``; ``model`` True: one with a due date a month ahead.

        A lifecycle command first enters the service into WHMCS's tables (``register``), as
        WHMCS has it before calling the module. ``bare``: php without its ini files, so with
        no extension but curl (and what is compiled in): the module must need nothing else."""
        if model is True:
            model = self.model()
        if register and function in LIFECYCLE and params.get("serviceid"):
            self.register(params, model=model or None)
        spec = {
            "module": str(MODULE), "function": function, "params": params,
            "model": model or None, "model_dates": model_dates, "area": area,
            "post": post or {}, "menu_context": menu_context or {},
            "stub": self.stub_config(localapi),
        }
        command = [php_binary() or "php", *(bare_php_args() if bare else ()), str(DRIVER)]
        proc = subprocess.run(command, input=json.dumps(spec), capture_output=True, text=True, timeout=timeout,
                              cwd=str(ROOT), env={**os.environ, "TZ": "UTC"})
        if proc.returncode != 0 or proc.stderr.strip():
            raise PhpError(f"php {function} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}")
        return json.loads(proc.stdout)["result"]

    @staticmethod
    def model(next_due: dt.date | str | None = None, cycle: str = "Monthly") -> dict:
        """The attributes of $params['model'] (WHMCS\\Service\\Service) the module reads."""
        due = next_due if next_due is not None else add_months(dt.date.today(), 1)
        return {"nextduedate": due if isinstance(due, str) else due.isoformat(), "billingcycle": cycle,
                "regdate": dt.date.today().isoformat(), "domainstatus": "Active"}

    # --- WHMCS's tables ---------------------------------------------------------------------
    def register(self, params: dict[str, Any], *, model: dict | None = None, status: str = "Pending",
                 welcome: bool = True) -> None:
        """The service as WHMCS stores it (tblhosting, its product, server and the module
        parameters WHMCS would build for it); an existing row keeps its status and password."""
        self.update_db(lambda data: self._register(data, params, model, status, welcome))

    def _register(self, data: dict, params: dict[str, Any], model: dict | None, status: str, welcome: bool) -> None:
        tables = data["tables"]
        sid = int(params["serviceid"])
        pid = int(params.get("pid") or 0)
        hosting = tables.setdefault("tblhosting", [])
        row = next((r for r in hosting if int(r["id"]) == sid), None)
        if row is None:
            row = {"id": sid, "userid": int(params.get("userid") or 0), "packageid": pid,
                   "server": int(params.get("serverid") or self.server_id), "domain": params.get("domain", ""),
                   "username": params.get("username", ""), "password": encrypt(str(params.get("password", ""))),
                   "domainstatus": status, "nextduedate": (model or {}).get("nextduedate", ""),
                   "billingcycle": (model or {}).get("billingcycle", ""), "overideautosuspend": 0,
                   "overidesuspenduntil": "0000-00-00"}
            hosting.append(row)
        else:
            row.update({"packageid": pid, "domain": params.get("domain", row["domain"]),
                        "server": int(params.get("serverid") or self.server_id)})
        products = tables.setdefault("tblproducts", [])
        if not any(int(p["id"]) == pid for p in products):
            products.append({"id": pid, "name": f"E-mail {pid}", "servertype": "provisioner",
                             "configoption2": params.get("configoption2", ""), "welcomeemail": 5 if welcome else 0,
                             "servergroup": 0})
        templates = tables.setdefault("tblemailtemplates", [])
        if not templates:
            templates.append({"id": 5, "type": "product", "name": WELCOME})
        servers = tables.setdefault("tblservers", [])
        server_id = int(params.get("serverid") or self.server_id)
        if not any(int(s["id"]) == server_id for s in servers):
            servers.append({"id": server_id, "name": "provisioner", "type": "provisioner",
                            "hostname": params.get("serverhostname", "127.0.0.1"),
                            "port": params.get("serverport", ""), "secure": "on" if params.get("serversecure") else "",
                            "username": params.get("serverusername", ""),
                            "password": encrypt(str(params.get("serverpassword", ""))),
                            "accesshash": params.get("serveraccesshash", ""), "disabled": 0})
        stored = tables.setdefault("stub_module_params", [])
        stored[:] = [r for r in stored if int(r["id"]) != sid]
        stored.append({"id": sid, "params": json.dumps(params), "model": model or {}})
        for table in ("tblhosting", "tblproducts", "tblemailtemplates", "tblservers", "stub_module_params"):
            if table not in data["schema"]:
                data["schema"].append(table)

    def hosting(self, service_id: str | int) -> dict:
        return next(r for r in self.db()["tables"].get("tblhosting", []) if int(r["id"]) == int(service_id))

    def set_hosting(self, service_id: str | int, **values: Any) -> None:
        def change(data: dict) -> None:
            for row in data["tables"]["tblhosting"]:
                if int(row["id"]) == int(service_id):
                    row.update(values)
        self.update_db(change)

    def todos(self) -> list[dict]:
        return self.db()["tables"].get("tbltodolist", [])

    def emails(self) -> list[dict]:
        return [c["values"] for c in self.localapi_calls() if c["command"] == "SendEmail"]

    def commands(self) -> list[dict]:
        return self.db()["tables"].get("mod_provisioner_commands", [])

    def activity(self) -> list[str]:
        if not self.activity_file.exists():
            return []
        return [json.loads(line)["message"] for line in self.activity_file.read_text().splitlines() if line.strip()]

    # --- what the stubs recorded ----------------------------------------------------------------
    def log_entries(self) -> list[dict]:
        if not self.log_file.exists():
            return []
        return [json.loads(line) for line in self.log_file.read_text().splitlines() if line.strip()]

    def log_text(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def hook_entries(self, action: str | None = None) -> list[dict]:
        return [e for e in self.log_entries() if "/hooks/v1/events" in str(e["request"])
                and (action is None or e["action"] == action)]

    @staticmethod
    def header(entry: dict, name: str) -> str | None:
        for line in str(entry["request"]).splitlines():
            if line.startswith(name + ": "):
                return line.split(": ", 1)[1]
        return None

    @staticmethod
    def sent_body(entry: dict) -> dict:
        return json.loads(str(entry["request"]).split("\n\n", 1)[1])

    def localapi_calls(self) -> list[dict]:
        if not self.localapi_file.exists():
            return []
        return [json.loads(line) for line in self.localapi_file.read_text().splitlines() if line.strip()]

    def db(self) -> dict:
        return json.loads(self.db_file.read_text()) if self.db_file.exists() else {"tables": {}, "schema": [], "writes": []}

    def update_db(self, change) -> None:
        """``change(data)`` in one read-modify-write under the stand-in's lock (db_file.lock),
        written whole and renamed into place: module calls and the callback receiver change
        the same file meanwhile."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(f"{self.db_file}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = self.db()
                data.setdefault("primary", {})
                change(data)
                temporary = self.db_file.with_suffix(f".{os.getpid()}.tmp")
                temporary.write_text(json.dumps(data))
                os.replace(temporary, self.db_file)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def seed_table(self, table: str, rows: list[dict]) -> None:
        def change(data: dict) -> None:
            data["tables"][table] = rows
            if table not in data["schema"]:
                data["schema"].append(table)
        self.update_db(change)

    # --- secrets --------------------------------------------------------------------------------
    def known_secrets(self) -> list[str]:
        secret = self.stack.webhook_secret
        return [secret, secret.removeprefix("whsec_"), self.stack.admin_key, *sorted(self.passwords)]

    def assert_no_secrets_logged(self, *extra: str, handed_over: tuple[str, ...] | None = None) -> None:
        """No secret in anything the module logged, and the server's secrets (``handed_over``;
        default: the stack's webhook secret and admin key) were given to WHMCS to mask."""
        text = "\n".join(p.read_text() for p in (self.log_file, self.activity_file) if p.exists())
        for value in [*self.known_secrets(), *extra]:
            assert value and value not in text, f"a secret ({value[:4]}…) reached the module log"
        masked = {h for e in self.log_entries() for h in e["replaceVars_sha256"]}
        for value in handed_over or (self.stack.webhook_secret, self.stack.admin_key):
            assert sha256(value) in masked, "logModuleCall was not told to mask the server's secrets"
