"""The Logbook Python client: `pip install clients/python` (no index needed).

The gRPC stubs are made from ../../proto at build time with the system's
protoc and grpc_python_plugin (Debian's protobuf-compiler and
protobuf-compiler-grpc), so they always match the server's proto and are
never checked in.
"""

import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "..", "proto")
PROTO = "logbook/v1/event_store.proto"


class BuildWithStubs(build_py):
    """build_py that also writes logbook/v1/event_store_pb2{,_grpc}.py."""

    def run(self):
        super().run()
        plugin = shutil.which("grpc_python_plugin")
        if plugin is None or shutil.which("protoc") is None:
            raise SystemExit(
                "protoc and grpc_python_plugin are needed to build the stubs "
                "(apt-get install protobuf-compiler protobuf-compiler-grpc)")
        subprocess.run(
            ["protoc", f"-I{PROTO_ROOT}", f"--python_out={self.build_lib}",
             f"--grpc_python_out={self.build_lib}",
             f"--plugin=protoc-gen-grpc_python={plugin}", PROTO],
            check=True)
        with open(os.path.join(self.build_lib, "logbook", "v1", "__init__.py"), "w"):
            pass


setup(
    name="logbook",
    version="0.1.0",
    description="Client for Logbook, the tamper-evident event store on PostgreSQL",
    packages=["logbook"],
    package_data={"logbook": ["py.typed"]},
    python_requires=">=3.9",
    install_requires=["grpcio", "protobuf"],
    cmdclass={"build_py": BuildWithStubs},
)
