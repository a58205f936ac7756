#!/usr/bin/env python3
"""Writes mechir/_descriptor.py: proto/mechir.proto as a FileDescriptorProto in text format.

The Python reader builds its message classes from this descriptor at import time (mechir/proto.py),
so installing it needs neither protoc nor generated code. Regenerate after changing the .proto:

    python3 python/tools/gen_descriptor.py [--protoc protoc-c] [--check]

--check compares the descriptors instead of writing (exit 1 when they differ);
tests/python/test_reader.sh runs it so the descriptor cannot drift from the .proto.
"""
import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROTO_DIR = os.path.join(ROOT, "proto")
OUT = os.path.join(ROOT, "python", "mechir", "_descriptor.py")

HEADER = '''"""proto/mechir.proto as a FileDescriptorProto in text format (generated: do not edit).

Made by python/tools/gen_descriptor.py from the descriptor set protoc writes for the .proto
(no source info); the test tests/python/test_reader.sh regenerates it and fails on a difference.
"""

FILE_DESCRIPTOR = """\\
'''


def descriptor_text(protoc):
    from google.protobuf import descriptor_pb2, text_format

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "mechir.pb")
        subprocess.run([protoc, "-I" + PROTO_DIR, "--descriptor_set_out=" + out,
                        os.path.join(PROTO_DIR, "mechir.proto")], check=True)
        with open(out, "rb") as f:
            fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    if len(fds.file) != 1:
        sys.exit("gen_descriptor: expected one file in the descriptor set, got %d" % len(fds.file))
    return text_format.MessageToString(fds.file[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protoc", default="protoc-c",
                    help="protoc or protoc-c (both write --descriptor_set_out); default protoc-c")
    ap.add_argument("--check", action="store_true", help="compare with the checked-in file")
    a = ap.parse_args()
    text = descriptor_text(a.protoc)
    if '"""' in text or "\\" in text:
        sys.exit("gen_descriptor: the descriptor text holds quotes or backslashes")
    module = HEADER + text + '"""\n'
    if a.check:
        # Compared as messages, not as text: another protobuf version may lay out the text
        # differently, but the descriptor must be the same.
        from google.protobuf import descriptor_pb2, text_format

        scope = {}
        with open(OUT, encoding="utf-8") as f:
            exec(compile(f.read(), OUT, "exec"), scope)
        old = text_format.Parse(scope["FILE_DESCRIPTOR"], descriptor_pb2.FileDescriptorProto())
        new = text_format.Parse(text, descriptor_pb2.FileDescriptorProto())
        if old != new:
            sys.exit("gen_descriptor: %s differs from proto/mechir.proto (run "
                     "python3 python/tools/gen_descriptor.py)" % OUT)
        print("gen_descriptor: %s matches proto/mechir.proto" % OUT)
        return
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(module)
    print("gen_descriptor: wrote %s" % OUT)


if __name__ == "__main__":
    main()
