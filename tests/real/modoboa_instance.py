"""A real Modoboa instance with a real Dovecot in front of its tables, for tests.

:class:`ModoboaInstance` starts, all on loopback ports and under its own temporary folders:

* a PostgreSQL database of its own (``modoboa_<hex>`` on the machine's server), cloned from
  ``modoboa_template``; the template is deployed once (``modoboa-admin.py deploy``, about
  17 s) and reused while its comment names the same Modoboa version;
* a private ``redis-server`` (Modoboa's cache and queues);
* the instance itself, deployed with ``modoboa-admin.py deploy`` onto the clone (its
  migrations are then a no-op) with the settings tests need, served by gunicorn;
* an API token (``manage.py drf_create_token admin``) and ``auto_account_removal`` on;
* Dovecot (IMAP only) authenticating against the instance's tables.

:meth:`stop` ends every process, drops the database and removes the folders.
What it needs is in :func:`problems` (``make modoboa-deps`` installs it).
"""
from __future__ import annotations

import ctypes
import grp
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import requests

from tests.real.modoboa_env import venv_dir, venv_problem

PG_HOST = os.environ.get("MODOBOA_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("MODOBOA_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("MODOBOA_TEST_PG_USER", "postgres")
TEMPLATE_DB = "modoboa_template"
DB_PREFIX = "modoboa_"
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVECOT_PGSQL = Path("/usr/lib/dovecot/modules/auth/libdriver_pgsql.so")
MAIL_USER = "nobody"            # mail processes never run as root
HTTP_TIMEOUT = 15               # seconds, every call to the instance
START_TIMEOUT = 60
STEP_TIMEOUT = 180              # one deploy or manage.py run

# Appended to the settings.py that ``deploy`` writes: what a test instance needs.
SETTINGS_OVERRIDES = '''

# --- set by the provisioner's tests (tests/real/modoboa_instance.py) ---
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
PID_FILE_STORAGE_PATH = BASE_DIR
# There is no /dev/log here: every syslog handler writes to stderr (gunicorn's log).
for _handler in LOGGING["handlers"].values():
    if _handler.get("class") == "logging.handlers.SysLogHandler":
        _handler.clear()
        _handler.update({"class": "logging.StreamHandler", "formatter": "syslog"})
LOGGING["handlers"]["console"] = {"class": "logging.StreamHandler"}
LOGGING["loggers"]["django"]["handlers"] = ["console"]
# DRF throttles (5 writes/s per view, 300 requests/min) answer 429 at a test's pace.
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {
    name: "100000/minute" for name in REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]}
'''

DOVECOT_CONF = """\
base_dir = {run}
state_dir = {state}
instance_name = modoboa-test-{port}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
auth_cache_size = 0
log_path = {log}
mail_location = maildir:~/Maildir
first_valid_uid = {uid}
default_internal_user = dovecot
default_login_user = dovenull
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
# Anvil's auth penalty (2-15 s after failed logins from one address) is off: the auth
# process cannot connect to a socket with no permissions and then skips it.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
passdb {{
  driver = sql
  args = {sql_conf}
}}
userdb {{
  driver = sql
  args = {sql_conf}
}}
# Usage goes to Modoboa's admin_quota table (what its API's quota_usage is computed from);
# the limit is the mailbox's quota (userdb's quota_rule).
mail_plugins = $mail_plugins quota
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
plugin {{
  quota = dict:User quota::proxy::quota
}}
dict {{
  quota = pgsql:{dict_conf}
}}
service dict {{
  unix_listener dict {{
    mode = 0666
  }}
}}
"""

# The installer's stock query checks only core_user.is_active, which stays true when the
# domain is disabled; joining the mailbox and its domain refuses disabled domains too.
DOVECOT_SQL = """\
driver = pgsql
connect = host={host} port={pg_port} dbname={db} user={user}
default_pass_scheme = SHA512-CRYPT
password_query = SELECT u.email AS user, u.password AS password \\
  FROM core_user u \\
  JOIN admin_mailbox mb ON mb.user_id = u.id \\
  JOIN admin_domain d ON d.id = mb.domain_id \\
  WHERE u.email = '%Lu' AND u.is_active AND d.enabled
user_query = SELECT '{mail}/' || d.name || '/' || mb.address AS home, {uid} AS uid, {gid} AS gid, \\
  '*:bytes=' || mb.quota || 'M' AS quota_rule \\
  FROM admin_mailbox mb JOIN admin_domain d ON d.id = mb.domain_id \\
  WHERE mb.address || '@' || d.name = '%Lu'
"""

DOVECOT_DICT = """\
connect = host={host} port={pg_port} dbname={db} user={user}
map {{
  pattern = priv/quota/storage
  table = admin_quota
  username_field = username
  value_field = bytes
}}
map {{
  pattern = priv/quota/messages
  table = admin_quota
  username_field = username
  value_field = messages
}}
"""


class InstanceError(RuntimeError):
    pass


def _pg_connect(dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname,
                           autocommit=True, connect_timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def problems() -> list[str]:
    """What is missing for a real instance (empty when everything is there)."""
    found = []
    if not os.access(DOVECOT, os.X_OK):
        found.append("Dovecot (Debian package dovecot-imapd)")
    if not DOVECOT_PGSQL.exists():
        found.append("Dovecot's PostgreSQL driver (Debian package dovecot-pgsql)")
    if not shutil.which("redis-server"):
        found.append("redis-server (Debian package redis-server)")
    problem = venv_problem()
    if problem:
        found.append(problem)
    try:
        with _pg_connect():
            pass
    except psycopg.Error as exc:
        found.append(f"PostgreSQL on {PG_HOST}:{PG_PORT} as {PG_USER}: {str(exc).strip()}")
    return found


def modoboa_version(venv: Path) -> str:
    dists = sorted(venv.glob("lib/python*/site-packages/modoboa-*.dist-info"))
    if not dists:
        raise InstanceError(f"no modoboa distribution in {venv}")
    return dists[-1].name.removeprefix("modoboa-").removesuffix(".dist-info")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _wait(check, *, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise InstanceError(f"{what} exited with {proc.returncode}:\n{_tail(log) if log else ''}")
        try:
            result = check()
            if result:
                return result
        except (OSError, requests.RequestException) as exc:
            last = exc
        time.sleep(0.1)
    raise InstanceError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})"
                        f"\n{_tail(log) if log else ''}")


def imap_greeting(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        return sock.recv(200).startswith(b"* OK")


class ModoboaInstance:
    """One running instance; ``start()`` then ``stop()`` (also after a failed start)."""

    def __init__(self) -> None:
        self.venv = venv_dir()
        _remove_abandoned_dirs()
        # Named after this process, so that a later run can tell what a killed one left.
        self.workdir = Path(tempfile.mkdtemp(prefix=f"modoboa-real-{os.getpid()}-"))
        # Dovecot's sockets live under base_dir: a short path keeps them under 108 bytes.
        self.dovecot_dir = Path(tempfile.mkdtemp(prefix=f"mdv-{os.getpid()}-"))
        self.db_name = f"{DB_PREFIX}{secrets.token_hex(6)}"
        self.db_created = False
        self.procs: dict[str, subprocess.Popen] = {}
        self.redis_port = free_port()
        self.http_port = free_port()
        self.imap_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.token = ""
        self.timings: dict[str, float] = {}
        self.template_built = False
        self.http = requests.Session()

    # -- the parts -------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], *, cwd: Path | None = None, env: dict | None = None):
        log = self.workdir / f"{name}.log"
        # Own session (killed as a group), no inherited stdin/stdout: pytest's pipes stay free.
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=_die_with_parent)
        self.procs[name] = proc
        return proc, log

    def _run(self, argv: list[str], *, cwd: Path, what: str) -> str:
        done = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=STEP_TIMEOUT)
        output = done.stdout + done.stderr
        if done.returncode != 0:
            raise InstanceError(f"{what} exited with {done.returncode}:\n{output[-4000:]}")
        return output

    def _start_redis(self) -> None:
        proc, log = self._spawn("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                          "--save", "", "--appendonly", "no", "--dir", str(self.workdir)])
        _wait(lambda: _redis_ping(self.redis_port), timeout=START_TIMEOUT, what="redis-server", proc=proc, log=log)

    def _deploy(self, where: Path, db_name: str) -> Path:
        """``modoboa-admin.py deploy``; it exits 0 even when migrations fail, so check the result."""
        where.mkdir(parents=True, exist_ok=True)
        output = self._run([str(self.venv / "bin" / "modoboa-admin.py"), "deploy", "instance",
                            "--domain", "127.0.0.1",
                            "--dburl", f"default:postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{db_name}",
                            "--redisurl", f"redis://127.0.0.1:{self.redis_port}/0"],
                           cwd=where, what="modoboa-admin.py deploy")
        if "failed, check your configuration" in output:
            raise InstanceError(f"modoboa-admin.py deploy failed:\n{output[-4000:]}")
        with _pg_connect(db_name) as conn:
            admins = conn.execute("SELECT count(*) FROM core_user WHERE username = 'admin' AND is_superuser"
                                  ).fetchone()[0]
        if admins != 1:
            raise InstanceError(f"modoboa-admin.py deploy left no superadmin in {db_name}:\n{output[-4000:]}")
        return where / "instance"

    def _database(self, version: str) -> None:
        """Clone the template (deploying it first if it is missing or for another version)."""
        stamp = f"provisioner tests: modoboa {version}"
        with _pg_connect() as conn:
            # One builder at a time; CREATE DATABASE ... TEMPLATE needs the template idle.
            conn.execute("SELECT pg_advisory_lock(hashtext('modoboa_template'))")
            try:
                row = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                                   "WHERE datname = %s", (TEMPLATE_DB,)).fetchone()
                if row is None or row[0] != stamp:
                    started = time.monotonic()
                    conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")
                    conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
                    self._deploy(self.workdir / "template", TEMPLATE_DB)
                    conn.execute(f"COMMENT ON DATABASE {TEMPLATE_DB} IS '{stamp}'")
                    self.template_built = True
                    self.timings["template_deploy_s"] = round(time.monotonic() - started, 1)
                _drop_abandoned(conn)
                conn.execute(f"CREATE DATABASE {self.db_name} TEMPLATE {TEMPLATE_DB}")
                self.db_created = True
                conn.execute(f"COMMENT ON DATABASE {self.db_name} IS "
                             f"'provisioner tests: pid {os.getpid()} on {socket.gethostname()}'")
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext('modoboa_template'))")

    def _configure(self, project: Path) -> None:
        settings = project / "instance" / "settings.py"
        settings.write_text(settings.read_text() + SETTINGS_OVERRIDES)

    def _start_gunicorn(self, project: Path) -> None:
        proc, log = self._spawn("gunicorn", [str(self.venv / "bin" / "gunicorn"), "instance.wsgi:application",
                                             "--bind", f"127.0.0.1:{self.http_port}", "--workers", "2",
                                             "--timeout", "60", "--access-logfile", "-",
                                             # gunicorn 23+ would put a control socket in ~/.gunicorn
                                             "--no-control-socket"], cwd=project)
        # Any HTTP answer means Django is serving (401 before there is a token).
        _wait(lambda: self.http.get(f"{self.url}/api/v2/domains/", timeout=2).status_code in (200, 401),
              timeout=START_TIMEOUT, what="gunicorn serving Modoboa", proc=proc, log=log)

    def _create_token(self, project: Path) -> None:
        output = self._run([str(self.venv / "bin" / "python"), "manage.py", "drf_create_token", "admin"],
                           cwd=project, what="manage.py drf_create_token admin")
        # "Generated token <40 hex> for user admin"
        words = [w for w in output.split() if len(w) == 40 and all(c in "0123456789abcdef" for c in w)]
        if not words:
            raise InstanceError(f"no token in drf_create_token's output: {output!r}")
        self.token = words[0]
        self.http.headers["Authorization"] = f"Token {self.token}"

    def _auto_account_removal(self) -> None:
        """Deleting a domain leaves its accounts active unless this global parameter is on."""
        path = f"{self.url}/api/v2/parameters/global/admin/"
        current = self.http.get(path, timeout=HTTP_TIMEOUT)
        current.raise_for_status()
        # GET answers {"label": ..., "params": {...}}; PUT takes the params object, whole.
        params = current.json()["params"]
        if params.get("auto_account_removal") is True:
            return
        params["auto_account_removal"] = True
        answer = self.http.put(path, json=params, timeout=HTTP_TIMEOUT)
        if answer.status_code != 200:
            raise InstanceError(f"PUT {path} answered {answer.status_code}: {answer.text[:2000]}")

    def _start_dovecot(self) -> None:
        d = self.dovecot_dir
        os.chmod(d, 0o755)      # the auth and login processes run as dovecot/dovenull
        user = pwd.getpwnam(MAIL_USER)
        gid = user.pw_gid if user.pw_gid else grp.getgrnam("nogroup").gr_gid
        mail = d / "mail"
        mail.mkdir()
        os.chown(mail, user.pw_uid, gid)
        (d / "state").mkdir()
        sql_conf = d / "dovecot-sql.conf.ext"
        pg = {"host": PG_HOST, "pg_port": PG_PORT, "db": self.db_name, "user": PG_USER}
        sql_conf.write_text(DOVECOT_SQL.format(**pg, mail=mail, uid=user.pw_uid, gid=gid))
        sql_conf.chmod(0o600)
        dict_conf = d / "dovecot-dict-sql.conf.ext"
        dict_conf.write_text(DOVECOT_DICT.format(**pg))
        dict_conf.chmod(0o600)
        internal = pwd.getpwnam("dovecot")      # the dict service runs as default_internal_user
        os.chown(dict_conf, internal.pw_uid, internal.pw_gid)
        conf = d / "dovecot.conf"
        self.dovecot_log = d / "dovecot.log"
        conf.write_text(DOVECOT_CONF.format(run=d / "run", state=d / "state", port=self.imap_port,
                                            log=self.dovecot_log, uid=user.pw_uid, gid=gid, mail=mail,
                                            sql_conf=sql_conf, dict_conf=dict_conf))
        proc, log = self._spawn("dovecot", [DOVECOT, "-F", "-c", str(conf)])
        _wait(lambda: imap_greeting(self.imap_port), timeout=START_TIMEOUT, what="Dovecot's IMAP greeting",
              proc=proc, log=self.dovecot_log if self.dovecot_log.exists() else log)

    # -- the whole -------------------------------------------------------------

    def start(self) -> "ModoboaInstance":
        problem = venv_problem(self.venv)
        if problem:
            raise InstanceError(problem)
        started = time.monotonic()
        self._start_redis()
        self._database(modoboa_version(self.venv))
        step = time.monotonic()
        project = self._deploy(self.workdir / "deploy", self.db_name)
        self.timings["deploy_s"] = round(time.monotonic() - step, 1)
        self._configure(project)
        self._start_gunicorn(project)
        self._create_token(project)
        self._auto_account_removal()
        self._start_dovecot()
        self.timings["startup_s"] = round(time.monotonic() - started, 1)
        return self

    def logs(self) -> str:
        parts = [f"===== {log.name} =====\n{_tail(log)}" for log in sorted(self.workdir.glob("*.log"))]
        dovecot_log = self.dovecot_dir / "dovecot.log"
        if dovecot_log.exists():
            parts.append(f"===== dovecot.log =====\n{_tail(dovecot_log)}")
        return "\n".join(parts)

    def stop(self) -> None:
        started = time.monotonic()
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        self.http.close()
        self.timings["stop_processes_s"] = round(time.monotonic() - started, 1)
        if self.db_created:
            with _pg_connect() as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {self.db_name} WITH (FORCE)")
        shutil.rmtree(self.workdir, ignore_errors=True)
        shutil.rmtree(self.dovecot_dir, ignore_errors=True)
        self.timings["stop_s"] = round(time.monotonic() - started, 1)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, even by SIGKILL (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)        # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _pid_gone(pid: str) -> bool:
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _remove_abandoned_dirs() -> None:
    for prefix in ("modoboa-real-", "mdv-"):
        for path in Path(tempfile.gettempdir()).glob(f"{prefix}*-*"):
            pid = path.name.removeprefix(prefix).split("-", 1)[0]
            if path.is_dir() and _pid_gone(pid):
                shutil.rmtree(path, ignore_errors=True)


def _drop_abandoned(conn: psycopg.Connection) -> None:
    """Drop the databases of earlier runs on this host whose process is gone (a killed run)."""
    host = socket.gethostname()
    rows = conn.execute("SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
                        "WHERE datname LIKE 'modoboa\\_%%' AND datname <> %s", (TEMPLATE_DB,)).fetchall()
    for name, comment in rows:
        prefix, _, owner = (comment or "").partition(": pid ")
        pid, _, on_host = owner.partition(" on ")
        if prefix != "provisioner tests" or on_host != host or not _pid_gone(pid):
            continue            # not ours, or its run is still going
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")
