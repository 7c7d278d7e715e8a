"""moto's server, with each request applied atomically.

moto applies a DynamoDB conditional write as a Python check followed by a put, with no lock,
so two server threads can both pass the check. DynamoDB itself makes every request atomic,
and the bundle's exactly-once guarantees rest on that. Serialising requests here restores the
real service's semantics; clients still send concurrently, so the tests still race our code.
"""

import argparse
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def atomic(app):
    lock = threading.Lock()

    def serialised(environ, start_response):
        with lock:
            return list(app(environ, start_response))

    return serialised


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, atomic(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
