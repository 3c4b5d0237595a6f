"""Serves a directory tree over HTTP on loopback until SIGTERM/SIGINT:
the part apt_repo.py and gem_source.py share (stdlib only).

serve(top, host, port, port_file, log_path): prints the port on stdout once
listening, also into port_file (written atomically: poll for it); log_path
gets one line per request ("GET /path 200"). Directory listings are 404.
"""
import http.server
import os
import signal
import threading


def make_handler(top, log_path, lock):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=top, **kw)

        def log_request(self, code="-", size="-"):
            if log_path:
                with lock, open(log_path, "a") as f:
                    f.write("%s %s %s\n" % (self.command, self.path, code))

        def log_message(self, fmt, *args):
            pass

        def list_directory(self, path):
            self.send_error(404)
            return None

    return Handler


def serve(top, host, port, port_file=None, log_path=None):
    server = http.server.ThreadingHTTPServer(
        (host, port), make_handler(top, log_path, threading.Lock()))
    port = server.server_address[1]
    if port_file:
        tmp = port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, port_file)
    print(port, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    t.start()
    stop.wait()
    server.shutdown()
    t.join()
    server.server_close()
