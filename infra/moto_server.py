"""moto's server, with each request applied atomically.

moto applies a DynamoDB conditional write as a Python check followed by a put, with no lock,
so two server threads can both pass the check. DynamoDB itself makes every request atomic,
and the bundle's exactly-once guarantees rest on that. Serialising requests here restores the
real service's semantics; clients still send concurrently, so the tests still race our code.
"""

import argparse
import json
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def outbox():
    """Every email moto's SES accepted, for the tests and the dev outbox page: moto keeps
    them only in memory, behind no AWS API."""
    from moto.ses.models import ses_backends

    messages = []
    for account, regions in ses_backends.items():
        for region, backend in regions.items():
            for message in backend.sent_messages:
                messages.append(
                    {
                        "id": message.id,
                        "source": message.source,
                        "destinations": getattr(message, "destinations", None),
                        "raw": getattr(message, "raw_data", None),
                        "subject": getattr(message, "subject", None),
                        "body": getattr(message, "body", None),
                    }
                )
    return messages


def atomic(app):
    lock = threading.Lock()

    def serialised(environ, start_response):
        with lock:
            if environ.get("PATH_INFO") == "/_outbox":
                body = json.dumps(outbox()).encode()
                start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
                return [body]
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
