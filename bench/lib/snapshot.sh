# End state of one test host, normalised so that provision's and Ansible's results can be
# compared line by line. Run as root on the host: `ssh HOST sh -s < snapshot.sh`.
# Left out on purpose: file contents that differ by design (the `ansible_managed` header,
# the generated secret key, timestamps), the virtualenv and the checked-out code.
export LC_ALL=C
echo "## http"
python3 - <<'PY'
import json, urllib.request
def get(u):
    try:
        r = urllib.request.urlopen(u, timeout=10)
        return r.status, r.headers.get("Server", ""), r.read().decode("utf-8", "replace")
    except Exception as e:
        return "ERR", "", type(e).__name__
s, srv, b = get("http://127.0.0.1/")
title = b.split("<title>")[1].split("</title>")[0].strip() if "<title>" in b else ""
print("GET / ->", s, srv.split("/")[0], repr(title))
s, srv, b = get("http://127.0.0.1/static/series/style.css")
print("GET /static/series/style.css ->", s, srv.split("/")[0], len(b) > 0)
s, srv, b = get("http://127.0.0.1:9200/")
try:
    j = json.loads(b)
    print("GET :9200/ ->", s, j.get("cluster_name"), j.get("name"), j.get("version", {}).get("number"))
except Exception:
    print("GET :9200/ ->", s)
PY
echo "## ufw"
ufw status verbose 2>&1 | sed -e 's/ *#.*$//' -e 's/ *$//'
echo "## packages"
dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' | awk '$1=="ii"{print $2}' \
  | grep -vxE 'python3-apt|python-apt-common|python3-psycopg2|distro-info-data|libpq5' | sort
# (Ansible's prerequisites, installed before its runs; libpq5 comes with psycopg2 on hosts
# without PostgreSQL, and with PostgreSQL everywhere else.)
echo "## services"
for s in nginx gunicorn postgresql elasticsearch ssh; do
  echo "$s enabled=$(systemctl is-enabled $s 2>/dev/null) active=$(systemctl is-active $s 2>/dev/null)"
done
echo "## database"
if command -v psql >/dev/null; then
  cd /tmp
  su postgres -c "psql -XAtc \"select datname, pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype from pg_database where datname not like 'template%' order by 1\"" 2>&1
  su postgres -c "psql -XAtc \"select rolname, rolcanlogin from pg_roles where rolname !~ '^pg_' order by 1\"" 2>&1
  # The privileges each role has on each database, defaults included (a NULL datacl and the
  # same privileges written out are the same state).
  su postgres -c "psql -XAtc \"select d.datname, coalesce(r.rolname, 'PUBLIC'), a.privilege_type, a.is_grantable from pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a left join pg_roles r on r.oid = a.grantee where d.datname not like 'template%' order by 1, 2, 3\"" 2>&1
fi
echo "## users"
getent passwd devartis | cut -d: -f1,6,7
id devartis 2>&1
echo "## tree"
find /home/devartis /etc/nginx/sites-enabled /etc/nginx/sites-available /etc/logrotate.d \
     /etc/systemd/system/gunicorn.service /etc/elasticsearch/elasticsearch.yml \
     /etc/elasticsearch/jvm.options.d \
     \( -path '*/.venv' -o -path '*/webapp/app' -o -path '*/webapp/static' -o -path '*/.cache' \
        -o -path '*/.ansible' -o -path '*/__pycache__' -o -path '*/.gunicorn' \) -prune -o \
     -printf '%p %u:%g %m %y %l\n' 2>/dev/null | grep -v -e '/\.bash' -e '/\.profile' | sort
echo "## venv"
[ -x /home/devartis/webapp/.venv/bin/pip ] && /home/devartis/webapp/.venv/bin/pip freeze 2>/dev/null | sort
echo "## checkout"
[ -d /home/devartis/webapp/app/.git ] && su devartis -c 'git -C /home/devartis/webapp/app rev-parse HEAD' 2>&1
