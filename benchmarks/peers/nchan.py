"""nginx + nchan (Debian's libnginx-mod-nchan) as a benchmark peer.

Writes a config into a temp dir and runs ``nginx -g 'daemon off;' -p DIR
-c nginx.conf``; stop() kills the master by pid.

Locations (one channel, "bench"):
  POST /pub  publisher        GET /sse  eventsource subscriber
  GET  /lp   long-poll subscriber
  GET  /ws   websocket subscriber and publisher (nchan_pubsub: a text
             frame a client sends is published to the channel, the
             sender included; the chat's input over the socket)
"""
import glob
import os
import shutil
import subprocess
import tempfile

MODULE_GLOBS = ['/usr/lib/nginx/modules/ngx_nchan_module.so',
                '/usr/share/nginx/modules/ngx_nchan_module.so',
                '/usr/lib*/nginx/modules/*nchan*.so']

CONFIG = """\
load_module {module};
worker_processes {workers};
worker_rlimit_nofile {nofile};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{
    worker_connections {conns};
    multi_accept on;
}}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 600s;
    nchan_max_reserved_memory 256M;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location = /pub {{
            nchan_publisher;
            nchan_channel_id bench;
            nchan_message_buffer_length 100;
            nchan_message_timeout 60s;
        }}
        location = /sse {{
            nchan_subscriber eventsource;
            nchan_channel_id bench;
            nchan_subscriber_first_message newest;
            nchan_subscriber_timeout 0;
        }}
        location = /ws {{
            nchan_pubsub websocket;
            nchan_channel_id bench;
            nchan_subscriber_first_message newest;
            nchan_subscriber_timeout 0;
            nchan_message_buffer_length 100;
            nchan_message_timeout 60s;
        }}
        location = /lp {{
            nchan_subscriber longpoll;
            nchan_channel_id bench;
            nchan_subscriber_first_message newest;
            nchan_subscriber_timeout 0;
        }}
    }}
}}
"""


def find_module():
    for pattern in MODULE_GLOBS:
        for path in sorted(glob.glob(pattern)):
            if os.path.exists(path):
                return path
    return None


def available():
    return shutil.which('nginx') is not None and find_module() is not None


class Nchan:
    def __init__(self, port, workers=2, conns=19000):
        self.port = port
        self.dir = tempfile.mkdtemp(prefix='bench-nchan-')
        user = 'user root;' if os.geteuid() == 0 else ''
        nofile = 20000
        try:
            import resource
            nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        except Exception:
            pass
        with open(os.path.join(self.dir, 'nginx.conf'), 'w') as f:
            f.write(CONFIG.format(module=find_module(), workers=workers,
                                  dir=self.dir, port=port, conns=conns,
                                  nofile=nofile, user=user))
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ['nginx', '-g', 'daemon off;', '-p', self.dir,
             '-c', os.path.join(self.dir, 'nginx.conf')],
            stdout=subprocess.DEVNULL, stderr=open(
                os.path.join(self.dir, 'stderr.log'), 'ab'))
        return self.proc

    def errors(self):
        out = []
        for name in ('stderr.log', 'error.log'):
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                out.append(open(path, errors='replace').read()[-2000:])
        return '\n'.join(out)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)
