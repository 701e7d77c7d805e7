"""A real S3 endpoint for tests: moto's server on a free loopback port (no AWS account, no mock
patching: s3fs/botocore talk HTTP to it exactly as they would to MinIO or AWS).

The connection settings are the standard AWS environment variables, which is also how a
deployment configures S3-compatible storage (see docs/how-to/s3.md).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

S3_ENV_KEYS = ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
               "AWS_DEFAULT_REGION", "AWS_EC2_METADATA_DISABLED")


@contextmanager
def s3_server() -> Iterator[dict[str, str]]:
    """Start moto's S3 server; set the AWS variables for this process; yield them."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    saved = {k: os.environ.get(k) for k in S3_ENV_KEYS}
    os.environ.update(env)
    _forget_clients()
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _forget_clients()
        server.stop()


def _forget_clients() -> None:
    """fsspec caches filesystem instances per process, and an S3 client keeps the endpoint it
    was created with: after a server on another port, a cached one would call a dead port."""
    from s3fs import S3FileSystem

    S3FileSystem.clear_instance_cache()


def new_bucket() -> str:
    """Create a bucket with a unique name; return it."""
    import fsspec

    name = f"test-{uuid.uuid4().hex[:16]}"
    fs = fsspec.filesystem("s3", use_listings_cache=False)
    fs.call_s3("create_bucket", Bucket=name)
    return name


def s3fs_client() -> Any:
    import fsspec

    return fsspec.filesystem("s3", use_listings_cache=False)
