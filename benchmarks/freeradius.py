"""FreeRADIUS 3 with rlm_sql on PostgreSQL, from a config written to a
temporary directory (nothing under /etc is touched).

The virtual server does what Passerelle does, with FreeRADIUS's stock
queries (Debian's ``queries.conf`` for PostgreSQL):

- authorize: ``sql`` (radcheck, radreply, group queries), then ``pap``
  against a **Cleartext-Password** (FreeRADIUS has no argon2; Passerelle
  verifies argon2id, then answers re-checks from a keyed-hash cache);
- post-auth: ``sql`` writes every decision to ``radpostauth``;
- accounting: ``acct_unique`` then ``sql``: one INSERT (Start) or UPDATE
  (Interim, Stop) into ``radacct`` per record.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url

from tests.need import stop

BINARY = "freeradius"
MODS_CONFIG = "/etc/freeradius/3.0/mods-config"

RADIUSD_CONF = """\
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {dir}/log
raddbdir = {dir}
radacctdir = {dir}/radacct
name = freeradius
confdir = {dir}
modconfdir = {mods_config}
run_dir = {dir}/run
db_dir = {dir}
libdir = /usr/lib/freeradius
pidfile = {dir}/run/freeradius.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 65536
hostname_lookups = no
correct_escapes = true

log {{
    destination = files
    file = {dir}/log/radius.log
    auth = no
}}

security {{
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = yes
}}

thread pool {{
    start_servers = {threads}
    max_servers = {threads_max}
    min_spare_servers = 3
    max_spare_servers = 16
    max_requests_per_server = 0
    auto_limit_acct = no
}}

client bench {{
    ipaddr = 127.0.0.1
    secret = {secret}
    require_message_authenticator = yes
}}

modules {{
    # %{{tolower:...}} in queries.conf and %{{md5:...}} come from rlm_expr.
    expr {{
    }}
    pap {{
        normalise = yes
    }}
    sql {{
        dialect = "postgresql"
        driver = "rlm_sql_postgresql"
        postgresql {{
            send_application_name = yes
        }}
        server = "{host}"
        port = {port}
        login = "{user}"
        password = ""
        radius_db = "{database}"
        acct_table1 = "radacct"
        acct_table2 = "radacct"
        postauth_table = "radpostauth"
        authcheck_table = "radcheck"
        groupcheck_table = "radgroupcheck"
        authreply_table = "radreply"
        groupreply_table = "radgroupreply"
        usergroup_table = "radusergroup"
        client_table = "nas"
        delete_stale_sessions = yes
        read_clients = no
        group_attribute = "SQL-Group"
        pool {{
            start = {connections}
            min = {connections}
            max = {threads_max}
            spare = 8
            uses = 0
            retry_delay = 30
            lifetime = 0
            idle_timeout = 60
        }}
        $INCLUDE ${{modconfdir}}/sql/main/${{dialect}}/queries.conf
    }}
}}

policy {{
    acct_unique {{
        update request {{
            &Acct-Unique-Session-Id := "%{{md5:%{{NAS-Identifier}},%{{Acct-Session-Id}}}}"
        }}
    }}
}}

server bench {{
    listen {{
        type = auth
        ipaddr = 127.0.0.1
        port = {auth_port}
    }}
    listen {{
        type = acct
        ipaddr = 127.0.0.1
        port = {acct_port}
    }}
    authorize {{
        sql
        pap
    }}
    authenticate {{
        Auth-Type PAP {{
            pap
        }}
    }}
    post-auth {{
        sql
        Post-Auth-Type REJECT {{
            sql
        }}
    }}
    preacct {{
        acct_unique
    }}
    accounting {{
        sql
    }}
}}
"""


@dataclass
class FreeRadius:
    dir: Path
    proc: subprocess.Popen[bytes]
    auth_port: int
    acct_port: int

    def pids(self) -> list[int]:
        return [self.proc.pid]

    def stop(self) -> None:
        stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def start(db_url: str, secret: str, auth_port: int, acct_port: int,
          threads: int = 16, connections: int = 8, threads_max: int = 32) -> FreeRadius:
    # One SQL connection per thread at most: rlm_sql fails a request (a
    # reject) when a thread finds the pool empty.
    binary = shutil.which(BINARY)
    if binary is None:
        raise RuntimeError("freeradius not found (apt-get install freeradius "
                           "freeradius-postgresql)")
    url = make_url(db_url)
    conf = Path(tempfile.mkdtemp(prefix="passerelle-bench-fr-"))
    for sub in ("log", "run", "radacct"):
        (conf / sub).mkdir()
    # FreeRADIUS reads its own dictionaries first, then this (local) one.
    (conf / "dictionary").write_text("# no local attributes\n")
    (conf / "radiusd.conf").write_text(RADIUSD_CONF.format(
        dir=conf, mods_config=MODS_CONFIG, secret=secret, host=url.host or "localhost",
        port=url.port or 5432,
        user=url.username, database=url.database, auth_port=auth_port, acct_port=acct_port,
        threads=threads, connections=connections, threads_max=threads_max))
    check = subprocess.run([binary, "-XC", "-d", str(conf)], capture_output=True, text=True)
    if check.returncode != 0:
        shutil.rmtree(conf, ignore_errors=True)
        raise RuntimeError(f"freeradius rejects the generated config:\n{check.stdout[-3000:]}"
                           f"{check.stderr}")
    proc = subprocess.Popen([binary, "-f", "-d", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    log = conf / "log" / "radius.log"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if log.exists() and "Ready to process requests" in log.read_text():
            return FreeRadius(conf, proc, auth_port, acct_port)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    text = log.read_text() if log.exists() else ""
    proc.kill()
    proc.wait()
    shutil.rmtree(conf, ignore_errors=True)
    raise RuntimeError(f"freeradius did not start:\n{text[-2000:]}")
