#!/usr/bin/python3
"""Elasticsearch stand-in for offline test hosts (NOT Elasticsearch).

Reads $ES_PATH_CONF/elasticsearch.yml (default /etc/elasticsearch) for
network.host / http.host (default 127.0.0.1; literal address, hostname,
_local_, _site_, 0.0.0.0, or a list whose first entry is used), http.port
(default 9200; a range like 9200-9300 means its first port), cluster.name and
node.name, then answers GET / like Elasticsearch 8.15.0.
"""
import json
import os
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONF_DIR = os.environ.get("ES_PATH_CONF", "/etc/elasticsearch")
CONF = os.path.join(CONF_DIR, "elasticsearch.yml")


def unquote(v):
    v = v.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        return v[1:-1]
    return v


def strip_comment(line):
    out, q = [], None
    for i, c in enumerate(line):
        if q:
            if c == q:
                q = None
        elif c in "'\"":
            q = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            break
        out.append(c)
    return "".join(out).rstrip()


def parse_yaml(text):
    """Minimal YAML for elasticsearch.yml: flat dotted keys, nested mappings,
    flow lists [a, b] and block lists (- a). Returns {dotted.key: value}."""
    flat, stack, last_key = {}, [], None  # stack of (indent, key)
    for raw in text.splitlines():
        line = strip_comment(raw)
        if not line.strip() or line.strip() in ("---", "..."):
            continue
        indent = len(line) - len(line.lstrip(" "))
        s = line.strip()
        if s.startswith("- "):
            if last_key is not None:
                cur = flat.get(last_key)
                if not isinstance(cur, list):
                    cur = []
                cur.append(unquote(s[2:]))
                flat[last_key] = cur
            continue
        if ":" not in s:
            continue
        key, _, val = s.partition(":")
        key, val = unquote(key), val.strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        full = ".".join([k for _, k in stack] + [key])
        if val == "":
            stack.append((indent, key))
            flat[full] = None
            last_key = full
            continue
        if val.startswith("[") and val.endswith("]"):
            flat[full] = [unquote(x) for x in val[1:-1].split(",") if x.strip()]
        else:
            flat[full] = unquote(val)
        last_key = full
    return flat


def first(v):
    if isinstance(v, list):
        return v[0] if v else None
    return v


def resolve_host(h):
    if h in (None, ""):
        return "127.0.0.1"
    h = str(h)
    if h in ("_local_", "_local:ipv4_"):
        return "127.0.0.1"
    if h == "_local:ipv6_":
        return "::1"
    if h in ("_site_", "_global_", "_site:ipv4_", "_global:ipv4_", "0", "0.0.0.0"):
        return "0.0.0.0"
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    return h


def resolve_port(p):
    if p in (None, ""):
        return 9200
    return int(str(p).split("-")[0].strip())


def main():
    try:
        with open(CONF) as f:
            conf = parse_yaml(f.read())
    except FileNotFoundError:
        conf = {}
    except PermissionError as e:
        sys.exit(f"standin: cannot read {CONF}: {e}")
    host = resolve_host(first(conf.get("http.host")) or first(conf.get("network.host")))
    port = resolve_port(first(conf.get("http.port")))
    name = conf.get("node.name") or socket.gethostname()
    cluster = conf.get("cluster.name") or "elasticsearch"
    info = {
        "name": name,
        "cluster_name": cluster,
        "cluster_uuid": "standin-0000000000000000",
        "version": {
            "number": "8.15.0",
            "build_flavor": "default",
            "build_type": "deb",
            "lucene_version": "9.11.1",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    }
    health = {"cluster_name": cluster, "status": "green", "timed_out": False,
              "number_of_nodes": 1, "number_of_data_nodes": 1}

    class Handler(BaseHTTPRequestHandler):
        server_version = "elasticsearch-standin"

        def reply(self, code, obj, body=True):
            data = (json.dumps(obj, indent=2) + "\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-elastic-product", "Elasticsearch")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def route(self, body):
            path = self.path.split("?")[0].rstrip("/") or "/"
            if path == "/":
                self.reply(200, info, body)
            elif path == "/_cluster/health":
                self.reply(200, health, body)
            else:
                self.reply(404, {"error": "no such index or path (stand-in)", "status": 404}, body)

        def do_GET(self):
            self.route(True)

        def do_HEAD(self):
            self.route(False)

        def log_message(self, fmt, *args):
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    ThreadingHTTPServer.allow_reuse_address = True
    if ":" in host:
        ThreadingHTTPServer.address_family = socket.AF_INET6
    server = ThreadingHTTPServer((host, port), Handler)
    print(f"elasticsearch stand-in listening on {host}:{port} (cluster {cluster})", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
