"""The message classes of proto/mechir.proto, built at import time from mechir/_descriptor.py.

Why not generated mechir_pb2.py: generated code is tied to the protoc that made it (a runtime
newer or older than the generator may refuse it), and making it at install time needs protoc.
A FileDescriptorProto fed to a private DescriptorPool works with every protobuf runtime since
3.x (Debian 12's python3-protobuf 4.21 included), needs no compiler, and the test regenerates
the descriptor from the .proto (python/tools/gen_descriptor.py --check), so it cannot drift.
"""
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from ._descriptor import FILE_DESCRIPTOR

_fdp = text_format.Parse(FILE_DESCRIPTOR, descriptor_pb2.FileDescriptorProto())
_pool = descriptor_pool.DescriptorPool()  # private: no clash with a user's own mechir_pb2
_pool.AddSerializedFile(_fdp.SerializeToString())


def _message_class(name):
    desc = _pool.FindMessageTypeByName("mechir." + name)
    get = getattr(message_factory, "GetMessageClass", None)  # protobuf >= 4.22
    if get is not None:
        return get(desc)
    return message_factory.MessageFactory(_pool).GetPrototype(desc)


JobSpec = _message_class("JobSpec")
InputFile = _message_class("InputFile")
PairInput = _message_class("PairInput")
PairResult = _message_class("PairResult")
Stats = _message_class("Stats")
Estimates = _message_class("Estimates")
Stratum = _message_class("Stratum")
CircuitMap = _message_class("CircuitMap")

__all__ = ["JobSpec", "InputFile", "PairInput", "PairResult", "Stats", "Estimates", "Stratum",
           "CircuitMap"]
